"""Self-augmentation: the backward model writes one instruction for every web document."""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.llm import LLMConfig
from humpback.params import AugmentationParams, GenerationRunParams
from humpback.pipelines.augmentation.postprocess import ECHO, OK, PROMPT_TOO_LONG, clean_instruction, looks_like_request
from humpback.prompts import backward_chat
from humpback.runner import CompletionLogprobs, Generate, ModelTask, run_model_task
from humpback.statistics import paired_bootstrap_difference

logger = logging.getLogger(__name__)

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


def parse_instruction_logprobs(pairs: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    scored = raw["token_logprobs"]
    return pd.DataFrame(
        {
            "instruction_tokens": [len(s) if s is not None else 0 for s in scored],
            "instruction_nll": [-float(np.sum(s)) if s is not None else math.nan for s in scored],
            "status": [OK if s is not None else PROMPT_TOO_LONG for s in scored],
        }
    )


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
        parse=parse_instruction_logprobs,
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
    both = backward_nll.merge(base_nll, on="prompt_id", suffixes=("_backward", "_base"))
    both = both.loc[(both["status_backward"] == OK) & (both["status_base"] == OK)]
    point, low, high = paired_bootstrap_difference(
        both[["instruction_nll_backward", "instruction_tokens_backward"]].to_numpy(float),
        both[["instruction_nll_base", "instruction_tokens_base"]].to_numpy(float),
        params.control_bootstrap_samples,
        params.control_seed,
    )
    usable = candidates["status"] == OK
    request_like = float(candidates.loc[usable, "request_like"].mean()) if usable.any() else math.nan
    echo = float((candidates["status"] == ECHO).mean()) if len(candidates) else math.nan
    failures = []
    if not high < 0:
        failures.append(
            f"true-instruction NLL not below the base model's (difference {point:.3f} [{low:.3f}, {high:.3f}])"
        )
    if not request_like >= params.min_request_like_share:
        failures.append(f"request-like share {request_like:.2f} < {params.min_request_like_share:.2f}")
    if not echo <= params.max_echo_share:
        failures.append(f"echo share {echo:.2f} > {params.max_echo_share:.2f}")
    check = {
        "heldout_pairs": len(both),
        "instruction_nll_backward": float(
            both["instruction_nll_backward"].sum() / both["instruction_tokens_backward"].sum()
        )
        if len(both)
        else math.nan,
        "instruction_nll_base": float(both["instruction_nll_base"].sum() / both["instruction_tokens_base"].sum())
        if len(both)
        else math.nan,
        "nll_difference": point,
        "nll_difference_ci_low": low,
        "nll_difference_ci_high": high,
        "request_like_share": request_like,
        "echo_share": echo,
        "min_request_like_share": params.min_request_like_share,
        "max_echo_share": params.max_echo_share,
        "passed": not failures,
        "reason": "; ".join(failures) or None,
    }
    if failures:
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
        Every document as a candidate; rows whose status is not ``ok`` have no instruction.
    """
    candidates = run_model_task(instruction_task(params), web_documents, backward_model, llm, generation)
    candidates = candidates.rename(columns={"text": "response"})[CANDIDATE_COLUMNS]
    usable = candidates["status"] == OK
    logger.info(
        "augmentation: %d of %d documents got a usable instruction; %.1f%% of those read as requests "
        "(a question, or a request or imperative opening)",
        int(usable.sum()),
        len(candidates),
        100 * candidates.loc[usable, "request_like"].mean() if usable.any() else 0.0,
    )
    return candidates
