"""Rewriting (back-and-forth translation): improve candidate responses, three modes by parameter.

- ``off``: Humpback as in the paper; responses stay as the web wrote them.
- ``self_before_curation``: the seed model rewrites every candidate before it is rated (Rw → F),
  so messy documents get a chance to pass curation.
- ``after_curation``: a configured model (the seed model, another checkpoint or a Hub id) rewrites
  only the pairs curation kept.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.engine.runner import TRUNCATED, Generate, ModelTask, run_model_task
from humpback.llm import LLMConfig
from humpback.params import GenerationRunParams, RewritingParams
from humpback.pipelines.rewriting.parsing import NOT_REQUESTED, parse_rewrite
from humpback.prompts import rewrite_chat


def _pair_prompt(row: dict[str, Any]):
    return rewrite_chat(row["instruction"], row["response"])


def parse_rewrites(params: RewritingParams, pairs: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The rewrite between its markers becomes the response; otherwise the draft stays, with why
    (``truncated``: cut at ``max_new_tokens``, even where a closing marker came before the cut)."""
    parsed = [
        (draft, TRUNCATED) if cut else parse_rewrite(output, draft, params.min_chars)
        for output, cut, draft in zip(raw["output"], raw["truncated"], pairs["response"])
    ]
    return pd.DataFrame(
        {
            "original_response": pairs["response"].to_numpy(),
            "rewrite_raw": raw["output"].to_numpy(),
            "response": [text for text, _ in parsed],
            "rewrite_status": [status for _, status in parsed],
        }
    )


def rewrite_task(params: RewritingParams, stage: str) -> ModelTask:
    return ModelTask(
        name=stage,
        reads=("instruction", "response"),
        prompt=_pair_prompt,
        request=Generate(params.sampling),
        parse=partial(parse_rewrites, params),
        status="rewrite_status",
    )


def _not_rewritten(pairs: pd.DataFrame) -> pd.DataFrame:
    return pairs.assign(original_response=pairs["response"], rewrite_raw=None, rewrite_status=NOT_REQUESTED)


def _self_rewriter(
    seed_model: CheckpointHandle, own_model: CheckpointHandle, settings: RewritingParams
) -> CheckpointHandle:
    """The model that rewrites in ``self`` modes: the iteration's own model (M0, then M1), or M0
    throughout when iteration 2 reuses iteration 1's rewrites (its finished shards are reused)."""
    return own_model if settings.iteration2 == "rewrite" else seed_model


def rewrite_candidates(
    candidates: pd.DataFrame,
    seed_model: CheckpointHandle,
    own_model: CheckpointHandle,
    llm: LLMConfig,
    params: RewritingParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """Candidates as they will be rated: in ``self_before_curation`` rewritten by the iteration's
    own model from the web text (iteration 1: M0; iteration 2: M1, unless ``rewriting.iteration2``
    is ``reuse``).

    Only candidates with a usable instruction (status ``ok``) are kept for rating; the others stay
    in the ``candidates`` dataset with the reason.
    """
    usable = candidates.loc[candidates["status"] == "ok"].drop(columns="status").reset_index(drop=True)
    if params.mode != "self_before_curation" or usable.empty:
        return _not_rewritten(usable)
    rewriter = _self_rewriter(seed_model, own_model, params)
    return _rewrite("rewrite_before_curation", usable, rewriter, llm, params, generation)


def rewrite_selected(
    selected: pd.DataFrame,
    seed_model: CheckpointHandle,
    own_model: CheckpointHandle,
    aligned_model: CheckpointHandle,
    llm: LLMConfig,
    params: RewritingParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """Kept pairs, rewritten in ``after_curation`` by ``rewriting.model``: the aligned model (as the
    back-and-forth paper does), the iteration's own model (``self``), or a folder / Hub id."""
    if params.mode != "after_curation" or selected.empty:
        return selected
    drafts = selected.drop(columns=["original_response", "rewrite_raw", "rewrite_status"], errors="ignore")
    if params.model == "aligned":
        rewriter = aligned_model
    elif params.model == "self":
        rewriter = _self_rewriter(seed_model, own_model, params)
    else:
        rewriter = CheckpointHandle(path=params.model, metadata={"role": "rewriter", "model_id": params.model})
    return _rewrite("rewrite_after_curation", drafts, rewriter, llm, params, generation)


def _rewrite(
    stage: str,
    pairs: pd.DataFrame,
    rewriter: CheckpointHandle,
    llm: LLMConfig,
    params: RewritingParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """Each pair's response rewritten by ``rewriter`` on the rewriter's own backend settings
    (``rewriting.llm`` over ``llm``)."""
    return run_model_task(rewrite_task(params, stage), pairs, rewriter, llm.with_overrides(params.llm), generation)
