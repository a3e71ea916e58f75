"""Training nodes: pairs → tagged SFT examples → a fine-tuned checkpoint with its loss curve."""

from __future__ import annotations

import pandas as pd

from humpback.datasets import CheckpointHandle, ModelArtifacts
from humpback.model_card import render_model_card
from humpback.params import TrainingParams
from humpback.pipelines.training.examples import build_examples
from humpback.pipelines.training.launch import train_launched
from humpback.pipelines.training.sft import train_sft


def prepare_sft_examples(pairs: pd.DataFrame, params: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prompt/completion examples (tagged, capped) and the funnel of dropped rows.

    Args:
        pairs: instruction, response, source rows (seed pairs, or seed + curated pairs).
        params: this model's ``training`` block.
    """
    training = TrainingParams.model_validate(params)
    return build_examples(pairs, training.direction, training.use_tags, training.max_examples, training.seed)


def train_model(
    examples: pd.DataFrame, base_model: CheckpointHandle, params: dict, curation_provenance: dict | None = None
) -> tuple[ModelArtifacts, pd.DataFrame, dict]:
    """Fine-tune the base model on the examples.

    Returns:
        The checkpoint to save (metadata: training summary, hyper-parameters, curation provenance;
        a model card), the loss curve and the summary as a small report.
    """
    training = TrainingParams.model_validate(params)
    train = train_sft if training.launcher == "in_process" else train_launched
    model, tokenizer, curve, summary = train(examples, base_model.path, training)
    metadata = {
        "role": training.role,
        "base_model": base_model.metadata.get("model_id", base_model.path),
        "training": summary,
        "hyperparameters": training.model_dump(mode="json"),
        "curation": curation_provenance,
    }
    card = render_model_card(metadata)
    return ModelArtifacts(model, tokenizer, metadata=metadata, files={"README.md": card}), curve, summary
