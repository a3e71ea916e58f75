"""Materialise the configured models as normal Hugging Face checkpoints with their prompt format."""

from __future__ import annotations

from humpback.datasets import ModelArtifacts
from humpback.params import ModelSourceParams
from humpback.pipelines.base_model.materialise import apply_prompt_format, embedded_model, load_model_and_tokenizer


def materialise_model(source: ModelSourceParams, role: str) -> ModelArtifacts:
    """Load a model from its source so every later stage reads one safetensors folder.

    The prompt format is settled here, once: a model without a chat template (a pretrained-only
    base model) gets the project's, and the token that ends an answer is saved as the token
    generation stops on. Every model trained from this checkpoint inherits both.

    Args:
        source: a model source block (``base_model`` or ``aligned_model``).
        role: ``base`` (the model the method fine-tunes) or ``aligned`` (judge, external rewriter).
    Returns:
        The model, tokenizer and provenance metadata for the checkpoint dataset.
    """
    model, tokenizer = load_model_and_tokenizer(source)
    prompt_format = apply_prompt_format(model, tokenizer, source.chat_template, source.chat_template_date)
    if source.source == "embedded":
        embedded = embedded_model(source.name_or_path)
        origin = {
            "model_id": embedded.model_id,
            "licence": embedded.licence,
            "embedded_package": embedded.distributions[0],
        }
    else:
        origin = {"model_id": source.name_or_path, "revision": source.revision}
    origin["weights"] = weights_description(source)
    return ModelArtifacts(model, tokenizer, metadata={"role": role, "source": source.source, **origin, **prompt_format})


def weights_description(source: ModelSourceParams) -> str:
    """How the weights were stored before this project loaded them: a dequantised GGUF is not the
    published model, and cards and reports must say so."""
    if source.source == "embedded":
        return f"GGUF {embedded_model(source.name_or_path).quantisation}, dequantised to {source.dtype}"
    if source.gguf_file:
        return f"GGUF ({source.gguf_file}), dequantised to {source.dtype}"
    return f"as published, in {source.dtype}"


def materialise_base_model(source: ModelSourceParams) -> ModelArtifacts:
    """The base model every trained model of the run starts from."""
    return materialise_model(source, "base")


def materialise_aligned_model(source: ModelSourceParams) -> ModelArtifacts:
    """The aligned helper: judge in evaluation and external rewriter, never a contestant."""
    return materialise_model(source, "aligned")
