"""Training nodes: pairs → tagged SFT examples → a fine-tuned checkpoint with its loss curve."""

from __future__ import annotations

import pandas as pd

from humpback.datasets import CheckpointHandle, ModelArtifacts
from humpback.llm import load_tokenizer
from humpback.params import DecontaminationParams, TrainingParams
from humpback.pipelines.training.examples import build_examples
from humpback.pipelines.training.launch import train_launched
from humpback.pipelines.training.sft import discard_checkpoints, train_sft
from humpback.reports.model_card import render_model_card


def prepare_sft_examples(
    pairs: pd.DataFrame,
    base_model: CheckpointHandle,
    training: TrainingParams,
    evaluation_pairs: pd.DataFrame,
    decontamination: DecontaminationParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prompt/completion examples (decontaminated, tagged, fitted to the length limit, capped, a
    few held out) and the funnel of dropped rows.

    Args:
        pairs: instruction, response, source rows (seed pairs, or seed + curated pairs).
        base_model: the checkpoint to fine-tune; its tokenizer measures the examples.
        training: this model's ``training`` block.
        evaluation_pairs: the held-out prompts of the evaluation (``instruction`` column).
        decontamination: the overlap rule that keeps them out of training.
    """
    tokenizer = load_tokenizer(base_model.path)
    return build_examples(pairs, tokenizer, training, evaluation_pairs["instruction"].tolist(), decontamination)


def in_base_dtype(model, base_model: CheckpointHandle):
    """The trained model in its base model's dtype: ``bf16_mixed`` trains fp32 master weights, but a
    bf16 base gives a bf16 checkpoint (half the disk; the engines load bf16 anyway)."""
    import torch

    dtype = getattr(torch, str(base_model.metadata.get("dtype", "")), None)
    return model.to(dtype) if isinstance(dtype, torch.dtype) and dtype.is_floating_point else model


def train_model(
    examples: pd.DataFrame,
    base_model: CheckpointHandle,
    training: TrainingParams,
    curation_provenance: dict | None = None,
) -> tuple[ModelArtifacts, pd.DataFrame, dict]:
    """Fine-tune the base model on the examples.

    Returns:
        The checkpoint to save (metadata: training summary, hyper-parameters, curation provenance;
        a model card), the loss curve and the summary as a small report.
    """
    train = train_sft if training.launcher == "in_process" else train_launched
    model, tokenizer, curve, summary = train(examples, base_model.path, training)
    discard_checkpoints(examples, base_model.path, training)
    model = in_base_dtype(model, base_model)
    metadata = {
        "role": training.role,
        "base_model": base_model.metadata.get("model_id", base_model.path),
        "base_model_licence": base_model.metadata.get("licence"),
        "base_model_weights": base_model.metadata.get("weights"),
        **{
            key: base_model.metadata[key]
            for key in ("prompt_format", "answer_end_tokens")
            if key in base_model.metadata
        },
        "training": summary,
        "hyperparameters": training.model_dump(mode="json"),
        "curation": curation_provenance,
    }
    card = render_model_card(metadata)
    return ModelArtifacts(model, tokenizer, metadata=metadata, files={"README.md": card}), curve, summary
