"""Self-augmentation: the backward model writes one instruction for every web document."""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from humpback.data.dedup import exact_key, near_duplicate_mask
from humpback.data.language import other_language
from humpback.datasets import CheckpointHandle
from humpback.engine.runner import (
    CompletionLogprobs,
    Generate,
    ModelTask,
    parse_completion_nll,
    run_model_task,
)
from humpback.llm import LLMConfig
from humpback.params import AugmentationParams, GenerationRunParams
from humpback.pipelines.augmentation.postprocess import (
    DUPLICATE,
    ECHO,
    NEAR_DUPLICATE,
    OK,
    OTHER_LANGUAGE,
    clean_instruction,
    looks_like_request,
)
from humpback.prompts import backward_chat
from humpback.reports import health
from humpback.reports.model_card import render_model_card
from humpback.reports.statistics import paired_nll_difference

logger = logging.getLogger(__name__)

#: statuses of an instruction that the cleaner accepted (screening may have set it aside after)
CLEANED = (OK, OTHER_LANGUAGE, DUPLICATE, NEAR_DUPLICATE)
CANDIDATE_COLUMNS = ["doc_id", "url", "response", "raw_instruction", "instruction", "status", "request_like"]


def _document_prompt(row: dict[str, Any]):
    return backward_chat(row["text"])


def parse_instructions(params: AugmentationParams, documents: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The backward model's output → the instruction, why it is unusable if it is, and whether it
    reads as a request."""
    cleaned = [
        clean_instruction(
            output, text, params.min_instruction_chars, params.max_instruction_chars, params.max_copied_fraction
        )
        for output, text in zip(raw["output"], documents["text"])
    ]
    return pd.DataFrame(
        {
            "raw_instruction": raw["output"].to_numpy(),
            "instruction": [instruction for instruction, _ in cleaned],
            "status": [status for _, status in cleaned],
            "request_like": [looks_like_request(instruction) for instruction, _ in cleaned],
        }
    )


def instruction_task(params: AugmentationParams) -> ModelTask:
    return ModelTask(
        name="augmentation",
        reads=("text",),
        prompt=_document_prompt,
        request=Generate(params.sampling),
        parse=partial(parse_instructions, params),
        status="status",
    )


def _answer_prompt(row: dict[str, Any]):
    return backward_chat(row["reference"])


def instruction_nll(
    heldout_pairs: pd.DataFrame, model: CheckpointHandle, llm: LLMConfig, generation: GenerationRunParams
) -> pd.DataFrame:
    """Negative log-likelihood of each held-out pair's true instruction given its human answer, in the
    backward model's prompt: how well a model does the backward model's job, with no generation."""
    task = ModelTask(
        name="augmentation_instruction_nll",
        reads=("reference",),
        prompt=_answer_prompt,
        request=CompletionLogprobs("instruction"),
        parse=partial(parse_completion_nll, "instruction"),
        status="status",
    )
    return run_model_task(task, heldout_pairs, model, llm, generation)[
        ["prompt_id", "instruction_tokens", "instruction_nll", "status"]
    ]


def summarise_backward_controls(
    backward_nll: pd.DataFrame, base_nll: pd.DataFrame, candidates: pd.DataFrame, params: AugmentationParams
) -> dict:
    """Whether the backward model does its job: it predicts held-out true instructions better than
    the base model (paired bootstrap over pairs), and what it wrote reads as requests, not echoes."""
    nll = paired_nll_difference(
        backward_nll, base_nll, "instruction", params.control_bootstrap_samples, params.control_seed
    )
    point, low, high = nll["difference"], nll["ci_low"], nll["ci_high"]
    usable = candidates["status"].isin(CLEANED)  # whether or not screened out afterwards
    request_like = float(candidates.loc[usable, "request_like"].mean()) if usable.any() else math.nan
    echo = float((candidates["status"] == ECHO).mean()) if len(candidates) else math.nan
    rows = [
        health.criterion(
            "backward model",
            "held-out true-instruction NLL − base model's (nats/token)",
            point,
            low=low,
            high=high,
            threshold="interval < 0",
            passed=high < 0,
            failure=f"true-instruction NLL not below the base model's (difference {point:.3f} [{low:.3f}, {high:.3f}])",
        ),
        health.at_least(
            "backward model",
            "request-like share of usable instructions",
            request_like,
            params.min_request_like_share,
            "request-like share",
        ),
        health.at_most("backward model", "echo share of outputs", echo, params.max_echo_share, "echo share"),
    ]
    check = {
        "heldout_pairs": nll["items"],
        "instruction_nll_backward": nll["first"],
        "instruction_nll_base": nll["second"],
        "nll_difference": point,
        "nll_difference_ci_low": low,
        "nll_difference_ci_high": high,
        "request_like_share": request_like,
        "echo_share": echo,
        "min_request_like_share": params.min_request_like_share,
        "max_echo_share": params.max_echo_share,
        **health.verdict(rows),
    }
    if not check["passed"]:
        logger.warning("BACKWARD MODEL FAILED ITS CONTROLS: %s", check["reason"])
    return check


def generate_instructions(
    web_documents: pd.DataFrame,
    backward_model: CheckpointHandle,
    llm: LLMConfig,
    params: AugmentationParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """One candidate pair per document: raw model output, cleaned instruction and a status.

    Returns:
        Every document as a candidate; only rows whose status is ``ok`` are curated. Rows the cleaner
        rejected have no instruction; screened-out ones (another language, a repeat) keep theirs.
    """
    candidates = run_model_task(instruction_task(params), web_documents, backward_model, llm, generation)
    candidates = screen_instructions(candidates.rename(columns={"text": "response"})[CANDIDATE_COLUMNS], params)
    usable = candidates["status"] == OK
    logger.info(
        "augmentation: %d of %d documents got a usable instruction; %.1f%% of those read as requests "
        "(a question, or a request or imperative opening)",
        int(usable.sum()),
        len(candidates),
        100 * candidates.loc[usable, "request_like"].mean() if usable.any() else 0.0,
    )
    return candidates


def screen_instructions(candidates: pd.DataFrame, params: AugmentationParams) -> pd.DataFrame:
    """Instructions in another language (``augmentation.language``), then repeats of an earlier
    instruction (exact after case and punctuation, then near: ``augmentation.instruction_duplicates``)
    lose their ``ok`` status, so curation never sees them; the curation funnel counts each status."""
    status = candidates["status"].copy()
    ok = status == OK
    status[ok] = np.where(other_language(candidates.loc[ok, "instruction"], params.language), OTHER_LANGUAGE, OK)
    ok = status == OK
    status[ok] = np.where(candidates.loc[ok, "instruction"].map(exact_key).duplicated(), DUPLICATE, OK)
    ok = status == OK
    if params.instruction_duplicates.enabled and ok.any():
        near = near_duplicate_mask(candidates.loc[ok, "instruction"].tolist(), params.instruction_duplicates)
        status[ok] = np.where(near, NEAR_DUPLICATE, OK)
    counts = status.value_counts()
    logger.info(
        "augmentation: screened out %d instructions in another language, %d exact and %d near duplicates",
        counts.get(OTHER_LANGUAGE, 0),
        counts.get(DUPLICATE, 0),
        counts.get(NEAR_DUPLICATE, 0),
    )
    return candidates.assign(status=status)


def backward_model_card(backward_model: CheckpointHandle, backward_check: dict) -> str:
    """The backward model's card with its controls: whether it writes the requests it was trained to."""
    return render_model_card(backward_model.metadata, checks=[backward_check])
