"""A backend that answers by rule: a stage run on a model whose behaviour is known.

A random tiny model shows that a stage runs; it cannot show that the stage does its job (a
``Score: 5`` is kept, a ``[RES]…[/RES]`` rewrite replaces the draft, a judge's preference reaches the
win rate). The scripted backend renders and tokenizes prompts exactly as the real backends do (the
tokenizer of the model folder), then hands the rendered text to a *script*: any object with some of

- ``generate(prompt: str) -> str``
- ``option_probabilities(prompt: str, options: list[str]) -> list[float]``
- ``completion_logprobs(prompt: str, completion: str) -> float | list[float]`` (one value is used
  for every token of the completion)

named in the configuration as ``llm.script: "module:attribute"`` (a class is instantiated), so the
configuration stays plain data and travels to Ray workers like any other. A script with
``for_model(model_path)`` answers with the script that returns, so two models of one stage (a
curating model and the base model) can follow different rules.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from humpback.llm.base import FolderTokenizerModel, Generation, PromptError, SamplingConfig
from humpback.llm.config import LLMConfig


def load_script(reference: str | None) -> Any:
    """The script object named ``module:attribute``; a class is instantiated without arguments."""
    if not reference or ":" not in reference:
        raise ValueError(
            f"llm.script must name a rule as 'module:attribute' for the scripted backend, not {reference!r}"
        )
    module, _, attribute = reference.partition(":")
    script = getattr(importlib.import_module(module), attribute)
    return script() if isinstance(script, type) else script


class ScriptedLanguageModel(FolderTokenizerModel):
    def __init__(self, config: LLMConfig, model_path: str) -> None:
        super().__init__(config, model_path)
        script = load_script(config.script)
        self.script = script.for_model(model_path) if hasattr(script, "for_model") else script

    def _rule(self, name: str):
        rule = getattr(self.script, name, None)
        if rule is None:
            raise PromptError(f"script {self.config.script} has no {name}(): it cannot answer this kind of request")
        return rule

    def _text(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids)

    def _generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        """A rule answers with its text, or with ``(text, truncated)`` to play a cut generation."""
        rule = self._rule("generate")
        answers = [rule(self._text(ids)) for ids in prompt_ids]
        return [Generation(*a) if isinstance(a, tuple) else Generation(str(a), False) for a in answers]

    def _option_logprobs(self, prompt_ids: list[list[int]], option_ids: list[int]) -> np.ndarray:
        rule = self._rule("option_probabilities")
        options = [self._tokenizer.decode([token]) for token in option_ids]
        with np.errstate(divide="ignore"):  # an option given probability 0 has log-probability -inf
            return np.log(np.array([rule(self._text(ids), options) for ids in prompt_ids], dtype=np.float64))

    def _token_logprobs(self, sequences: list[list[int]], starts: list[int]) -> list[np.ndarray]:
        rule = self._rule("completion_logprobs")
        result = []
        for ids, start in zip(sequences, starts):
            values = np.asarray(rule(self._text(ids[:start]), self._text(ids[start:])), dtype=np.float64)
            result.append(np.broadcast_to(values, (len(ids) - start,)).copy())
        return result
