"""Materialise the configured base model as a normal Hugging Face checkpoint."""

from __future__ import annotations

from humpback.datasets import ModelArtifacts
from humpback.models import EMBEDDED_MODEL_ID, load_model_and_tokenizer, locate_embedded_gguf
from humpback.params import ModelSourceParams


def materialise_base_model(params: dict) -> ModelArtifacts:
    """Load the base model from its source so every later stage reads one safetensors folder.

    Args:
        params: ``base_model`` parameters (source, name_or_path, dtype, …).
    Returns:
        The model, tokenizer and provenance metadata for the checkpoint dataset.
    """
    source = ModelSourceParams.model_validate(params)
    model, tokenizer = load_model_and_tokenizer(source)
    origin = (
        {"model_id": EMBEDDED_MODEL_ID, "gguf": locate_embedded_gguf().name}
        if source.source == "embedded"
        else {"model_id": source.name_or_path, "revision": source.revision}
    )
    return ModelArtifacts(model, tokenizer, metadata={"role": "base", "source": source.source, **origin})
