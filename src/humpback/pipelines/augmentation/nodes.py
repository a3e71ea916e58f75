"""Self-augmentation: the backward model writes one instruction for every web document."""

from __future__ import annotations

import logging
from functools import partial

import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.execution import map_with_model
from humpback.llm import LanguageModel, LLMConfig, SamplingConfig
from humpback.params import AugmentationParams, GenerationRunParams
from humpback.pipelines.augmentation.postprocess import OK, clean_instruction, looks_like_request
from humpback.prompts import BACKWARD_SYSTEM, backward_chat

logger = logging.getLogger(__name__)

CANDIDATE_COLUMNS = ["doc_id", "url", "response", "raw_instruction", "instruction", "status", "request_like"]


def write_instructions(sampling: SamplingConfig, model: LanguageModel, documents: pd.DataFrame) -> pd.DataFrame:
    """The backward model's raw output for each document (None: the document is too long)."""
    prompts = [backward_chat(text) for text in documents["text"]]
    return pd.DataFrame({"raw_instruction": model.generate_where_fits(prompts, sampling)})


def generate_instructions(
    web_documents: pd.DataFrame, backward_model: CheckpointHandle, llm: dict, params: dict, generation: dict
) -> pd.DataFrame:
    """One candidate pair per document: raw model output, cleaned instruction and a status.

    Args:
        web_documents: cleaned c4 documents (doc_id, text, url).
        backward_model: checkpoint of M_yx.
        llm: backend settings (``llm`` block).
        params: ``augmentation`` block (sampling, length and echo rules).
        generation: ``generation`` block (shard folder and size, for resume).
    Returns:
        Every document as a candidate; rows whose status is not ``ok`` have no instruction.
    """
    settings = AugmentationParams.model_validate(params)
    run = GenerationRunParams.model_validate(generation)
    config = LLMConfig.model_validate(llm)
    raw = map_with_model(
        web_documents,
        partial(write_instructions, settings.sampling),
        llm=config,
        model_path=backward_model.path,
        generation=run,
        stage="augmentation",
        settings={
            "weights": backward_model.metadata.get("weights_sha256"),
            "sampling": settings.sampling.model_dump(),
            "prompt": BACKWARD_SYSTEM,
        },
        key_columns=["doc_id"],
    )
    cleaned = [
        clean_instruction(
            output, text, settings.min_instruction_chars, settings.max_instruction_chars, settings.max_copied_fraction
        )
        for output, text in zip(raw["raw_instruction"], web_documents["text"])
    ]
    candidates = pd.DataFrame(
        {
            "doc_id": web_documents["doc_id"].to_numpy(),
            "url": web_documents["url"].to_numpy(),
            "response": web_documents["text"].to_numpy(),
            "raw_instruction": raw["raw_instruction"].to_numpy(),
            "instruction": [instruction for instruction, _ in cleaned],
            "status": [status for _, status in cleaned],
            "request_like": [looks_like_request(instruction) for instruction, _ in cleaned],
        },
        columns=CANDIDATE_COLUMNS,
    )
    usable = candidates["status"] == OK
    logger.info(
        "augmentation: %d of %d documents got a usable instruction; %.1f%% of those read as requests "
        "(a question, or a request or imperative opening)",
        int(usable.sum()), len(candidates), 100 * candidates.loc[usable, "request_like"].mean() if usable.any() else 0.0,
    )
    return candidates
