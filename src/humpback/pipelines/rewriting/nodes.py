"""Rewriting (back-and-forth translation): improve candidate responses, three modes by parameter.

- ``off``: Humpback as in the paper; responses stay as the web wrote them.
- ``self_before_curation``: the seed model rewrites every candidate before it is rated (Rw → F),
  so messy documents get a chance to pass curation.
- ``after_curation``: a configured model (the seed model, another checkpoint or a Hub id) rewrites
  only the pairs curation kept.
"""

from __future__ import annotations

from functools import partial

import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.execution import map_with_model
from humpback.llm import LanguageModel, LLMConfig, SamplingConfig
from humpback.params import GenerationRunParams, RewritingParams
from humpback.pipelines.rewriting.parsing import NOT_REQUESTED, parse_rewrite
from humpback.prompts import REWRITE_TEMPLATE, rewrite_chat


def write_rewrites(sampling: SamplingConfig, model: LanguageModel, pairs: pd.DataFrame) -> pd.DataFrame:
    """The rewriting model's raw output for each pair (None: the prompt is too long)."""
    prompts = [rewrite_chat(i, r) for i, r in zip(pairs["instruction"], pairs["response"])]
    return pd.DataFrame({"rewrite_raw": model.generate_where_fits(prompts, sampling)})


def _rewrite(
    pairs: pd.DataFrame, model_path: str, weights: str | None, llm: dict, settings: RewritingParams, generation: dict, stage: str
) -> pd.DataFrame:
    """Add original_response, rewrite_raw and rewrite_status; ``response`` becomes the rewrite.

    ``weights`` identifies the model's weights (a checkpoint's hash) so cached shards of another
    model are never reused; a Hub id or folder given by name is identified by that name.
    """
    run = GenerationRunParams.model_validate(generation)
    config = LLMConfig.model_validate(llm)
    raw = map_with_model(
        pairs,
        partial(write_rewrites, settings.sampling),
        llm=config,
        model_path=model_path,
        generation=run,
        stage=stage,
        settings={"weights": weights, "sampling": settings.sampling.model_dump(), "prompt": REWRITE_TEMPLATE},
        key_columns=["doc_id", "instruction"],
    )
    parsed = [parse_rewrite(r, d, settings.min_chars) for r, d in zip(raw["rewrite_raw"], pairs["response"])]
    return pairs.assign(
        original_response=pairs["response"].to_numpy(),
        rewrite_raw=raw["rewrite_raw"].to_numpy(),
        response=[text for text, _ in parsed],
        rewrite_status=[status for _, status in parsed],
    )


def _not_rewritten(pairs: pd.DataFrame) -> pd.DataFrame:
    return pairs.assign(original_response=pairs["response"], rewrite_raw=None, rewrite_status=NOT_REQUESTED)


def _self_rewriter(seed_model: CheckpointHandle, own_model: CheckpointHandle, settings: RewritingParams) -> CheckpointHandle:
    """The model that rewrites in ``self`` modes: the iteration's own model (M0, then M1), or M0
    throughout when iteration 2 reuses iteration 1's rewrites (its finished shards are reused)."""
    return own_model if settings.iteration2 == "rewrite" else seed_model


def rewrite_candidates(
    candidates: pd.DataFrame, seed_model: CheckpointHandle, own_model: CheckpointHandle, llm: dict, params: dict,
    generation: dict,
) -> pd.DataFrame:
    """Candidates as they will be rated: in ``self_before_curation`` rewritten by the iteration's
    own model from the web text (iteration 1: M0; iteration 2: M1, unless ``rewriting.iteration2``
    is ``reuse``).

    Only candidates with a usable instruction (status ``ok``) are kept for rating; the others stay
    in the ``candidates`` dataset with the reason.
    """
    settings = RewritingParams.model_validate(params)
    usable = candidates.loc[candidates["status"] == "ok"].drop(columns="status").reset_index(drop=True)
    if settings.mode != "self_before_curation" or usable.empty:
        return _not_rewritten(usable)
    rewriter = _self_rewriter(seed_model, own_model, settings)
    return _rewrite(usable, rewriter.path, rewriter.metadata.get("weights_sha256"), llm, settings, generation,
                    stage="rewrite_before_curation")


def rewrite_selected(
    selected: pd.DataFrame, seed_model: CheckpointHandle, own_model: CheckpointHandle, aligned_model: CheckpointHandle,
    llm: dict, params: dict, generation: dict,
) -> pd.DataFrame:
    """Kept pairs, rewritten in ``after_curation`` by ``rewriting.model``: the aligned model (as the
    back-and-forth paper does), the iteration's own model (``self``), or a folder / Hub id."""
    settings = RewritingParams.model_validate(params)
    if settings.mode != "after_curation" or selected.empty:
        return selected
    drafts = selected.drop(columns=["original_response", "rewrite_raw", "rewrite_status"], errors="ignore")
    if settings.model in ("aligned", "self"):
        rewriter = aligned_model if settings.model == "aligned" else _self_rewriter(seed_model, own_model, settings)
        model_path, weights = rewriter.path, rewriter.metadata.get("weights_sha256")
    else:
        model_path, weights = settings.model, None
    return _rewrite(drafts, model_path, weights, llm, settings, generation, stage="rewrite_after_curation")
