"""Self-augmentation: the backward model writes one instruction for every web document."""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.llm import LLMConfig
from humpback.params import AugmentationParams, GenerationRunParams
from humpback.pipelines.augmentation.postprocess import OK, clean_instruction, looks_like_request
from humpback.prompts import backward_chat
from humpback.runner import Generate, ModelTask, run_model_task

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
