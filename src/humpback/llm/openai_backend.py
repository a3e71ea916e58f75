"""A model behind an OpenAI-compatible server (vLLM's ``vllm serve``, TGI, llama.cpp's server, or a
hosted API that accepts token prompts), used through the same interface as the in-process backends.

Prompts are rendered and tokenized here, with the tokenizer of the model folder the stage names
(the served model must be that model: its weights hash keys the cache), and sent to the legacy
``/v1/completions`` endpoint as token ids, so the server sees exactly the tokens the cache keys.

- ``generate``: one completion per prompt (temperature, top-p, seed, max tokens).
- option probabilities: one token generated with ``logprobs`` (the server's top log-probabilities);
  an option outside the top list gets probability 0, and a prompt with none of them in it NaN
  (the stage records it as not scored, as it does a prompt too long).
- completion log-probabilities: ``echo`` with ``logprobs`` and no new token, the prompt's own
  token log-probabilities (vLLM supports it; many servers do not).

Requests run ``concurrency`` at a time, retried with exponential backoff on connection errors,
timeouts, 429 and 5xx. A server that lacks a capability gets one clear :class:`ServerCapabilityError`.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np

from humpback.llm.base import FolderTokenizerModel, Generation, SamplingConfig
from humpback.llm.config import LLMConfig

logger = logging.getLogger(__name__)

RETRIED_STATUSES = {408, 409, 429, 500, 502, 503, 504}


class ServerError(RuntimeError):
    """The server could not be reached or kept failing after every retry."""


class ServerCapabilityError(ServerError):
    """The server answered, but cannot do what the stage asks (log-probabilities, token prompts)."""


class OpenAICompatibleLanguageModel(FolderTokenizerModel):
    def __init__(self, config: LLMConfig, model_path: str) -> None:
        if not config.base_url or not config.served_model:
            raise ValueError("the openai backend needs llm.base_url and llm.served_model")
        super().__init__(config, model_path)
        headers = {}
        if config.api_key_env:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise ValueError(f"llm.api_key_env names {config.api_key_env}, but that environment variable is empty")
            headers["Authorization"] = f"Bearer {key}"
        self._client = httpx.Client(
            base_url=config.base_url.rstrip("/"), headers=headers, timeout=config.request_timeout_s
        )

    def close(self) -> None:
        self._client.close()

    # --- requests -------------------------------------------------------------------------------

    def _post(self, body: dict[str, Any], capability: str) -> dict[str, Any]:
        """POST /completions with retries; a 4xx other than rate limits is the server saying it cannot."""
        body = {"model": self.config.served_model, **body}
        delay = 1.0
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self._client.post("/completions", json=body)
            except (httpx.TransportError, httpx.TimeoutException) as error:
                problem = f"{type(error).__name__}: {error}"
            else:
                if response.status_code < 300:
                    return response.json()
                if response.status_code not in RETRIED_STATUSES:
                    raise ServerCapabilityError(
                        f"{self.config.base_url} cannot serve {capability} for {self.config.served_model}: "
                        f"HTTP {response.status_code}: {response.text[:300]}"
                    )
                problem = f"HTTP {response.status_code}"
            if attempt < self.config.max_retries:
                logger.warning("%s: %s; retrying in %.0f s", self.config.base_url, problem, delay)
                time.sleep(delay)
                delay *= 2
        raise ServerError(
            f"{self.config.base_url} failed {self.config.max_retries + 1} times ({problem}); is the server running?"
        )

    def _map(self, function, items: list) -> list:
        if len(items) <= 1 or self.config.concurrency == 1:
            return [function(item) for item in items]
        with ThreadPoolExecutor(max_workers=self.config.concurrency) as pool:
            return list(pool.map(function, items))

    def _generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        def one(request: tuple[list[int], int]) -> Generation:
            ids, seed = request
            answer = self._post(
                {
                    "prompt": ids,
                    "max_tokens": sampling.max_new_tokens,
                    "temperature": sampling.temperature,
                    "top_p": sampling.top_p,
                    "seed": seed,
                    "stop_token_ids": self.stop_token_ids,
                },
                "text generation from token prompts",
            )
            choice = answer["choices"][0]
            return Generation(choice["text"], choice.get("finish_reason") == "length")

        return self._map(one, list(zip(prompt_ids, seeds)))

    def _option_logprobs(self, prompt_ids: list[list[int]], option_ids: list[int]) -> np.ndarray:
        options = [self.tokenizer.decode([token]) for token in option_ids]

        def one(ids: list[int]) -> list[float]:
            answer = self._post(
                {"prompt": ids, "max_tokens": 1, "temperature": 0.0, "logprobs": max(20, len(options))},
                "top log-probabilities (option probabilities)",
            )
            logprobs = (answer["choices"][0].get("logprobs") or {}).get("top_logprobs")
            if not logprobs:
                raise ServerCapabilityError(
                    f"{self.config.base_url} returned no top log-probabilities: option probabilities need them"
                )
            top = logprobs[0]
            values = [float(top.get(option, -np.inf)) for option in options]
            # none of the options among the top tokens: unknown, not zero (argmax would pick the first)
            return [np.nan] * len(options) if np.isneginf(values).all() else values

        return np.array(self._map(one, prompt_ids), dtype=np.float64)

    def _token_logprobs(self, sequences: list[list[int]], starts: list[int]) -> list[np.ndarray]:
        def one(item: tuple[list[int], int]) -> np.ndarray:
            ids, start = item
            answer = self._post(
                {"prompt": ids, "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1},
                "prompt log-probabilities (echo)",
            )
            values = (answer["choices"][0].get("logprobs") or {}).get("token_logprobs")
            if not values or len(values) < len(ids):
                raise ServerCapabilityError(
                    f"{self.config.base_url} did not echo the prompt's log-probabilities: "
                    "completion log-probabilities need `echo` with `logprobs`"
                )
            return np.array(values[start : len(ids)], dtype=np.float64)

        return self._map(one, list(zip(sequences, starts)))
