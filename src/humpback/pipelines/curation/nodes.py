"""Self-curation: a model rates every candidate on the paper's 5-point rubric; the best are kept.

Two scorers by parameter. ``generate`` asks for brief reasoning and ``Score: N`` on the last line
and parses it robustly (failures are recorded, never fatal). ``option_probabilities`` reads the
distribution over "1".."5" as the next token in one forward pass and keeps the expected score and
the argmax.
"""

from __future__ import annotations

import logging
from functools import partial

import numpy as np
import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.execution import map_with_model
from humpback.llm import LanguageModel, LLMConfig, SamplingConfig
from humpback.params import CurationParams, GenerationRunParams, RewritingParams
from humpback.pipelines.curation.parsing import PARSED, parse_score
from humpback.prompts import RATING_EXAMPLES, RATING_FRAMING, RATING_INSTRUCTIONS, RATING_TEMPLATE, RUBRIC, SCORE_OPTIONS, SCORE_PREFIX, rating_chat

logger = logging.getLogger(__name__)

PROBABILITY_COLUMNS = [f"p_{option}" for option in SCORE_OPTIONS]


def rate_pairs(scorer: str, few_shot: int, sampling: SamplingConfig, model: LanguageModel, pairs: pd.DataFrame) -> pd.DataFrame:
    """The rater's raw rating of each pair: its text (generate) or the five option probabilities."""
    prompts = [rating_chat(i, r, scorer, few_shot) for i, r in zip(pairs["instruction"], pairs["response"])]
    if scorer == "generate":
        return pd.DataFrame({"score_raw": model.generate_where_fits(prompts, sampling)})
    return pd.DataFrame(model.score_options_where_fits(prompts, SCORE_OPTIONS), columns=PROBABILITY_COLUMNS)


def score_candidates(
    rated_candidates: pd.DataFrame, rater: CheckpointHandle, llm: dict, params: dict, generation: dict
) -> pd.DataFrame:
    """Every candidate with its rating: score, status, raw output or option probabilities.

    Returns:
        The input columns plus ``scorer``, ``rater``, ``score`` (1–5 or missing), ``score_status``,
        ``score_raw`` (generate) or ``p_1``..``p_5``, ``option_mass`` and ``expected_score``
        (option_probabilities; probabilities renormalised over the five options).
    """
    settings = CurationParams.model_validate(params)
    run = GenerationRunParams.model_validate(generation)
    config = LLMConfig.model_validate(llm)
    ratings = map_with_model(
        rated_candidates,
        partial(rate_pairs, settings.scorer, settings.few_shot, settings.sampling),
        llm=config,
        model_path=rater.path,
        generation=run,
        stage=f"curation_{settings.scorer}",
        settings={"weights": rater.metadata.get("weights_sha256"), "scorer": settings.scorer, "few_shot": settings.few_shot,
                  "sampling": settings.sampling.model_dump(),
                  "prompt": [RATING_FRAMING, RUBRIC, RATING_INSTRUCTIONS, RATING_TEMPLATE, SCORE_PREFIX, RATING_EXAMPLES]},
        key_columns=["doc_id", "instruction", "response"],
    )
    scored = rated_candidates.reset_index(drop=True).assign(scorer=settings.scorer, rater=rater.metadata.get("role", rater.path))
    if settings.scorer == "generate":
        parsed = [parse_score(text) if isinstance(text, str) else (None, "prompt_too_long") for text in ratings["score_raw"]]
        return scored.assign(
            score_raw=ratings["score_raw"].to_numpy(),
            score=pd.array([score for score, _ in parsed], dtype="Int64"),
            score_status=[status for _, status in parsed],
        )
    probabilities = ratings[PROBABILITY_COLUMNS].to_numpy()
    mass = probabilities.sum(axis=1)
    fits = ~np.isnan(mass)
    normalised = np.where(fits[:, None], probabilities / np.where(fits, mass, 1)[:, None], np.nan)
    expected = normalised @ np.arange(1, 6)
    argmax = np.where(fits, np.nan_to_num(normalised).argmax(axis=1) + 1, 0)
    return scored.assign(
        **{column: probabilities[:, k] for k, column in enumerate(PROBABILITY_COLUMNS)},
        option_mass=mass,
        expected_score=expected,
        score=pd.array([int(s) if ok else None for s, ok in zip(argmax, fits)], dtype="Int64"),
        score_status=np.where(fits, PARSED, "prompt_too_long"),
    )


def select_pairs(scored: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, dict]:
    """Keep pairs by score threshold (5 as in the paper, or 4) or the top fraction by score.

    Returns:
        The kept pairs and a summary; when nothing passes, M1 trains on the seed data alone and
        the summary and the log say so.
    """
    selection = CurationParams.model_validate(params).selection
    rated = scored.loc[scored["score"].notna()]
    if selection.method == "threshold":
        kept = rated.loc[rated["score"] >= selection.threshold]
    else:
        ranking = rated["expected_score"] if "expected_score" in rated else rated["score"].astype(float)
        count = int(np.floor(len(rated) * selection.top_fraction))
        kept = rated.loc[ranking.sort_values(ascending=False, kind="stable").index[:count]] if count else rated.iloc[:0]
    kept = kept.sort_index()
    summary = {
        "method": selection.method,
        "threshold": selection.threshold if selection.method == "threshold" else None,
        "top_fraction": selection.top_fraction if selection.method == "top_fraction" else None,
        "candidates": len(scored),
        "rated": len(rated),
        "kept": len(kept),
        "nothing_selected": kept.empty,
    }
    if kept.empty:
        logger.warning(
            "CURATION KEPT NOTHING: 0 of %d rated candidates passed %s; the next model trains on seed data alone",
            len(rated), selection.method,
        )
    return kept.reset_index(drop=True), summary


def build_training_pairs(seed_pairs: pd.DataFrame, curated_pairs: pd.DataFrame) -> pd.DataFrame:
    """Seed pairs plus curated pairs, each tagged with its source for the system-prompt tags."""
    seed = seed_pairs[["instruction", "response"]].assign(source="seed")
    augmented = curated_pairs[["instruction", "response"]].assign(source="augmented")
    return pd.concat([seed, augmented], ignore_index=True)


def describe_curation(
    selection_summary: dict, web_documents: pd.DataFrame, candidates: pd.DataFrame, rater: CheckpointHandle,
    curation: dict, rewriting: dict,
) -> dict:
    """How this iteration's training pairs were made, for the trained model's card and metadata."""
    settings = CurationParams.model_validate(curation)
    rewrite = RewritingParams.model_validate(rewriting)
    return {
        "rater": rater.metadata.get("role", rater.path),
        "rater_weights_sha256": rater.metadata.get("weights_sha256"),
        "scorer": settings.scorer,
        "few_shot": settings.few_shot,
        "rewriting_mode": rewrite.mode,
        "rewriting_model": rewrite.model if rewrite.mode == "after_curation" else None,
        "documents": len(web_documents),
        "candidates": int((candidates["status"] == "ok").sum()),
        **{key: selection_summary[key] for key in ("method", "threshold", "top_fraction", "rated", "kept")},
    }
