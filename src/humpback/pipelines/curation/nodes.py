"""Self-curation: a model rates every candidate on the paper's 5-point rubric; the best are kept.

Two scorers by parameter. ``generate`` asks for brief reasoning and ``Score: N`` on the last line
and parses it robustly (failures are recorded, never fatal). ``option_probabilities`` reads the
distribution over "1".."5" as the next token in one forward pass and keeps the expected score and
the argmax.
"""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.engine.runner import (
    PROMPT_TOO_LONG,
    TRUNCATED,
    Generate,
    ModelTask,
    OptionProbabilities,
    run_model_task,
)
from humpback.llm import LLMConfig
from humpback.params import CurationParams, GenerationRunParams, RewritingParams, SelectionParams
from humpback.pipelines.curation.parsing import PARSED, parse_score
from humpback.prompts import SCORE_OPTIONS, rating_chat
from humpback.reports import health
from humpback.reports.statistics import paired_win_share

logger = logging.getLogger(__name__)

PROBABILITY_COLUMNS = [f"p_{option}" for option in SCORE_OPTIONS]


def _rating_prompt(scorer: str, few_shot: int, row: dict[str, Any]):
    return rating_chat(row["instruction"], row["response"], scorer, few_shot)


def parse_generated_scores(pairs: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """``Score: N`` read from the rater's text; why not, when it cannot be read (``truncated``: the
    rationale was cut at ``max_new_tokens`` before the score it ends with)."""
    parsed = [
        (None, TRUNCATED) if cut else parse_score(text) if isinstance(text, str) else (None, PROMPT_TOO_LONG)
        for text, cut in zip(raw["output"], raw["truncated"])
    ]
    return pd.DataFrame(
        {
            "score_raw": raw["output"].to_numpy(),
            "score": pd.array([score for score, _ in parsed], dtype="Int64"),
            "score_status": [status for _, status in parsed],
        }
    )


def parse_option_scores(pairs: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The five next-token probabilities, their mass, the expected score (renormalised over the
    options) and the most probable score."""
    probabilities = raw[SCORE_OPTIONS].to_numpy(dtype=float)
    mass = probabilities.sum(axis=1)
    fits = ~np.isnan(mass)
    normalised = np.where(fits[:, None], probabilities / np.where(fits, mass, 1)[:, None], np.nan)
    argmax = np.where(fits, np.nan_to_num(normalised).argmax(axis=1) + 1, 0)
    return pd.DataFrame(
        {
            **{column: probabilities[:, k] for k, column in enumerate(PROBABILITY_COLUMNS)},
            "option_mass": mass,
            "expected_score": normalised @ np.arange(1, 6),
            "score": pd.array([int(s) if ok else None for s, ok in zip(argmax, fits)], dtype="Int64"),
            "score_status": np.where(fits, PARSED, PROMPT_TOO_LONG),
        }
    )


def rating_task(params: CurationParams, stage: str = "curation") -> ModelTask:
    generate = params.scorer == "generate"
    return ModelTask(
        name=f"{stage}_{params.scorer}",
        reads=("instruction", "response"),
        prompt=partial(_rating_prompt, params.scorer, params.few_shot),
        request=Generate(params.sampling) if generate else OptionProbabilities(tuple(SCORE_OPTIONS)),
        parse=parse_generated_scores if generate else parse_option_scores,
        status="score_status",
    )


def score_candidates(
    rated_candidates: pd.DataFrame,
    rater: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """Every candidate with its rating: score, status, raw output or option probabilities.

    Returns:
        The input columns plus ``scorer``, ``rater``, ``score`` (1–5 or missing), ``score_status``,
        ``score_raw`` (generate) or ``p_1``..``p_5``, ``option_mass`` and ``expected_score``
        (option_probabilities; probabilities renormalised over the five options).
    """
    rated = rated_candidates.assign(scorer=params.scorer, rater=rater.metadata.get("role", rater.path))
    return run_model_task(rating_task(params), rated, rater, llm, generation)


CONTROL_KINDS = ("human", "mismatched", "web")


def control_pairs(heldout_pairs: pd.DataFrame, web_documents: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Pairs whose quality is known without labels: each held-out prompt with its own human answer
    (good), with the next prompt's human answer (off-topic) and with a web document (not an answer)."""
    if len(heldout_pairs) < 2 or web_documents.empty:
        raise ValueError("curator controls need at least two held-out pairs and one web document")
    web = web_documents["text"].sample(
        n=len(heldout_pairs), replace=len(web_documents) < len(heldout_pairs), random_state=seed
    )
    responses = {
        "human": heldout_pairs["reference"].to_numpy(),
        "mismatched": health.mismatched(heldout_pairs["reference"]),
        "web": web.to_numpy(),
    }
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "doc_id": [f"control-{kind}-{prompt}" for prompt in heldout_pairs["prompt_id"]],
                    "prompt_id": heldout_pairs["prompt_id"].to_numpy(),
                    "control": kind,
                    "instruction": heldout_pairs["instruction"].to_numpy(),
                    "response": responses[kind],
                }
            )
            for kind in CONTROL_KINDS
        ],
        ignore_index=True,
    )


def curator_controls(
    heldout_pairs: pd.DataFrame,
    web_documents: pd.DataFrame,
    rater: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """The rater's scores of the control pairs, rated exactly as the candidates are."""
    pairs = control_pairs(heldout_pairs, web_documents, params.control_seed)
    return run_model_task(rating_task(params, stage="curation_controls"), pairs, rater, llm, generation)


def summarise_curator_controls(controls: pd.DataFrame, rater: CheckpointHandle, params: CurationParams) -> dict:
    """Whether the rater ranks each held-out prompt's own human answer above the same prompt with a
    mismatched answer and with a web document: the share of prompts where it does (ties half), with a
    bootstrap interval over prompts, passing when the interval's lower bound reaches
    ``curation.min_control_auc``. Also the spread of its scores and how many it could rate."""
    rated = controls.loc[controls["score"].notna()]
    ranking = _ranking(rated)
    by_prompt = rated.pivot_table(index="prompt_id", columns="control", values=ranking, aggfunc="first")
    check = {
        "rater": rater.metadata.get("role", rater.path),
        "scorer": params.scorer,
        "ranking": ranking,
        "control_pairs": len(controls),
        "rated_share": len(rated) / len(controls) if len(controls) else math.nan,
        "score_spread": float(rated[ranking].astype(float).std()) if len(rated) > 1 else math.nan,
        "distinct_scores": int(rated["score"].nunique()),
        "min_control_auc": params.min_control_auc,
        "min_rated_share": params.min_rated_share,
    }
    model, rows = f"curator ({check['rater']})", []
    for other in ("mismatched", "web"):
        pairs = by_prompt.reindex(columns=["human", other]).dropna().to_numpy(float)
        share, low, high = paired_win_share(
            pairs[:, 0], pairs[:, 1], params.control_bootstrap_samples, params.control_seed
        )
        check |= {f"auc_vs_{other}": share, f"auc_vs_{other}_ci_low": low, f"auc_vs_{other}_ci_high": high}
        check[f"prompts_vs_{other}"] = len(pairs)
        rows.append(
            health.criterion(
                model,
                f"human above {other} answer, same prompt (paired AUC)",
                share,
                low=low,
                high=high,
                threshold=f"lower bound ≥ {params.min_control_auc}",
                passed=bool(low >= params.min_control_auc),
                failure=f"AUC human vs {other} {share:.2f} [{low:.2f}, {high:.2f}]: lower bound < {params.min_control_auc:.2f}",
            )
        )
    if params.scorer == "option_probabilities":  # every pair gets a score: what can fail is the mass
        check["option_mass"] = float(controls["option_mass"].mean()) if len(controls) else math.nan
        rows.append(
            health.at_least(
                model,
                "probability on the score options (mean option mass)",
                check["option_mass"],
                params.min_option_mass,
                "option mass",
            )
        )
    else:
        rows.append(
            health.criterion(
                model,
                "share of control pairs rated (parse rate)",
                check["rated_share"],
                threshold=f"≥ {params.min_rated_share}",
                passed=check["rated_share"] >= params.min_rated_share,
                failure=f"rated {check['rated_share']:.0%} of control pairs < {params.min_rated_share:.0%}",
            )
        )
    rows.append(health.information(model, f"spread of its {ranking} (sd)", check["score_spread"]))
    check |= health.verdict(rows)
    if not check["passed"]:
        logger.warning("CURATOR FAILED ITS CONTROLS (%s): %s", check["rater"], check["reason"])
    return check


class CuratorFailedError(RuntimeError):
    """The curator failed its controls and ``curation.on_failed_controls`` is ``stop``."""


def select_pairs(scored: pd.DataFrame, curator_check: dict, params: CurationParams) -> tuple[pd.DataFrame, dict]:
    """Keep pairs by score threshold (5 as in the paper, or 4) or the top fraction by score, unless
    the curator failed its controls: then ``curation.on_failed_controls`` decides (stop the run,
    keep nothing so the next model trains on the seed pairs, or keep the pick and say so).

    Returns:
        The kept pairs and a summary (with the curator's verdict and the action taken); when nothing
        is kept, the next model trains on the seed data alone and the summary and the log say so.
    """
    selection: SelectionParams = params.selection
    rated = scored.loc[scored["score"].notna()]
    ranking = _ranking(rated)
    if selection.method == "threshold":
        kept = rated.loc[rated["score"] >= selection.threshold]
    else:
        count = int(np.floor(len(rated) * selection.top_fraction))
        best = rated[ranking].astype(float).sort_values(ascending=False, kind="stable").index[:count]
        kept = rated.loc[best] if count else rated.iloc[:0]
    kept = kept.sort_index()
    passed, action = bool(curator_check.get("passed")), "kept"
    if not passed:
        reason = curator_check.get("reason")
        if params.on_failed_controls == "stop":
            raise CuratorFailedError(
                f"the curator ({curator_check.get('rater')}) failed its controls: {reason}. "
                "curation.on_failed_controls is `stop`; set it to seed_only or warn to go on."
            )
        if params.on_failed_controls == "seed_only":
            kept, action = kept.iloc[:0], "seed_only"
            logger.warning(
                "CURATOR FAILED ITS CONTROLS (%s): nothing kept, the next model trains on seed pairs", reason
            )
        else:
            action = "kept_despite_failed_controls"
            logger.warning("CURATOR FAILED ITS CONTROLS (%s): its pick is kept (on_failed_controls: warn)", reason)
    summary = {
        "method": selection.method,
        "threshold": selection.threshold if selection.method == "threshold" else None,
        "top_fraction": selection.top_fraction if selection.method == "top_fraction" else None,
        "candidates": len(scored),
        "rated": len(rated),
        "kept": len(kept),
        "nothing_selected": kept.empty,
        f"mean_{ranking}_kept": _mean(kept[ranking]),
        "curator_passed": passed,
        "on_failed_controls": params.on_failed_controls,
        "action": action,
    }
    if kept.empty:
        logger.warning(
            "CURATION KEPT NOTHING: 0 of %d rated candidates kept (%s, %s); the next model trains on seed data alone",
            len(rated),
            selection.method,
            action,
        )
    return kept.reset_index(drop=True), summary


def select_random_pairs(scored: pd.DataFrame, curated: dict, params: CurationParams) -> tuple[pd.DataFrame, dict]:
    """Curation's control: as many rated candidates as curation kept, drawn at random from the same
    pool. A model trained on them beside M1 asks whether the curator chose better than chance (the
    paper's quality-versus-quantity question); the mean scores of both samples say how differently
    they were chosen."""
    rated = scored.loc[scored["score"].notna()]
    kept = rated.sample(n=min(curated["kept"], len(rated)), random_state=params.random_selection_seed).sort_index()
    ranking = _ranking(rated)
    summary = {
        "method": "random",
        "threshold": None,
        "top_fraction": None,
        "seed": params.random_selection_seed,
        "candidates": len(scored),
        "rated": len(rated),
        "kept": len(kept),
        "nothing_selected": kept.empty,
        f"mean_{ranking}_kept": _mean(kept[ranking]),
        f"mean_{ranking}_curated": curated.get(f"mean_{ranking}_kept", math.nan),
        f"mean_{ranking}_rated": _mean(rated[ranking]),
    }
    return kept.reset_index(drop=True), summary


def _ranking(rated: pd.DataFrame) -> str:
    """The column that orders rated pairs: the expected score where the scorer gives one."""
    return "expected_score" if "expected_score" in rated else "score"


def _mean(values: pd.Series) -> float:
    return float(values.astype(float).mean()) if len(values) else math.nan


def build_training_pairs(seed_pairs: pd.DataFrame, curated_pairs: pd.DataFrame) -> pd.DataFrame:
    """Seed pairs plus curated pairs, each tagged with its source for the system-prompt tags."""
    seed = seed_pairs[["instruction", "response"]].assign(source="seed")
    augmented = curated_pairs[["instruction", "response"]].assign(source="augmented")
    return pd.concat([seed, augmented], ignore_index=True)


def describe_curation(
    selection_summary: dict,
    curator_check: dict,
    web_documents: pd.DataFrame,
    candidates: pd.DataFrame,
    rater: CheckpointHandle,
    curation: CurationParams,
    rewriting: RewritingParams,
) -> dict:
    """How this iteration's training pairs were made, for the trained model's card and metadata."""
    return {
        "rater": rater.metadata.get("role", rater.path),
        "rater_weights_sha256": rater.metadata.get("weights_sha256"),
        "scorer": curation.scorer,
        "few_shot": curation.few_shot,
        "rewriting_mode": rewriting.mode,
        "rewriting_model": rewriting.model if rewriting.mode == "after_curation" else None,
        "documents": len(web_documents),
        "candidates": int((candidates["status"] == "ok").sum()),
        **{key: value for key, value in selection_summary.items() if key != "candidates"},
        "curator_check": curator_check,
    }
