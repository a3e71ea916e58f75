"""Self-augmentation: the backward model writes one instruction for every web document."""

from __future__ import annotations

import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.llm import LazyLanguageModel, LLMConfig
from humpback.params import AugmentationParams, GenerationRunParams
from humpback.pipelines.augmentation.postprocess import clean_instruction
from humpback.prompts import BACKWARD_SYSTEM, backward_chat
from humpback.shards import run_sharded

CANDIDATE_COLUMNS = ["doc_id", "url", "response", "raw_instruction", "instruction", "status"]


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
    with LazyLanguageModel(config, backward_model.path) as model:

        def write(batch: pd.DataFrame) -> pd.DataFrame:
            prompts = [backward_chat(text) for text in batch["text"]]
            return pd.DataFrame({"raw_instruction": model.get().generate_where_fits(prompts, settings.sampling)})

        raw = run_sharded(
            web_documents,
            write,
            stage="augmentation",
            shard_dir=run.shard_dir,
            shard_size=run.shard_size,
            settings={
                "model": backward_model.path,
                "weights": backward_model.metadata.get("weights_sha256"),
                "sampling": settings.sampling.model_dump(),
                "llm": config.model_dump(),
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
    return pd.DataFrame(
        {
            "doc_id": web_documents["doc_id"].to_numpy(),
            "url": web_documents["url"].to_numpy(),
            "response": web_documents["text"].to_numpy(),
            "raw_instruction": raw["raw_instruction"].to_numpy(),
            "instruction": [instruction for instruction, _ in cleaned],
            "status": [status for _, status in cleaned],
        },
        columns=CANDIDATE_COLUMNS,
    )
