"""Building a backend from its serialisable config: the one place that knows every backend.

Backends are imported only when selected (vLLM, httpx and Ray stay optional), and they import the
interface in :mod:`humpback.llm.base`, never this module, so the package has no import circle.
"""

from __future__ import annotations

from humpback.llm.base import LanguageModel
from humpback.llm.config import LLMConfig


def build_llm(config: LLMConfig | dict, model_path: str) -> LanguageModel:
    """Build the configured backend for the model in ``model_path`` (imports it only now)."""
    config = LLMConfig.model_validate(config)
    from humpback.llm.platform import resolve_llm_settings

    config = config.with_overrides(resolve_llm_settings(config.model_dump()))  # a run has resolved them already
    if config.backend == "scripted":
        from humpback.llm.scripted import ScriptedLanguageModel

        return ScriptedLanguageModel(config, model_path)
    if config.backend == "openai":
        from humpback.llm.openai_backend import OpenAICompatibleLanguageModel

        return OpenAICompatibleLanguageModel(config, model_path)
    if config.backend == "vllm":
        from humpback.llm.vllm_backend import VLLMLanguageModel

        return VLLMLanguageModel(config, model_path)
    from humpback.llm.transformers_backend import TransformersLanguageModel

    return TransformersLanguageModel(config, model_path)


class LazyLanguageModel:
    """Builds the model on first use: a resumed stage whose shards are all done loads nothing."""

    def __init__(self, config: LLMConfig | dict, model_path: str) -> None:
        self.config, self.model_path = config, model_path
        self._model: LanguageModel | None = None

    def get(self) -> LanguageModel:
        if self._model is None:
            self._model = build_llm(self.config, self.model_path)
        return self._model

    @property
    def built(self) -> LanguageModel | None:
        """The model if it has been built, without building it."""
        return self._model

    def __enter__(self) -> LazyLanguageModel:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        if self._model is not None:
            self._model.close()
            self._model = None
