"""One small interface to a language model, with interchangeable backends.

Every LLM step of the method (writing instructions, rewriting, rating) calls :func:`build_llm` with a
plain, serialisable :class:`LLMConfig` and a checkpoint folder, then uses ``generate`` and
``score_options``. Backends are imported lazily, so a config can travel to worker processes and
the vLLM backend is only needed where it is selected.
"""

from humpback.llm.base import LanguageModel, Prompt, PromptError, SamplingConfig
from humpback.llm.config import LLMConfig
from humpback.llm.factory import LazyLanguageModel, build_llm
from humpback.llm.tokenizer import load_tokenizer

__all__ = [
    "LLMConfig",
    "LanguageModel",
    "LazyLanguageModel",
    "Prompt",
    "PromptError",
    "SamplingConfig",
    "build_llm",
    "load_tokenizer",
]
