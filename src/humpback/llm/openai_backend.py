"""A model behind an OpenAI-compatible server (vLLM's ``vllm serve``, TGI, llama.cpp's server, or a
hosted API), used through the same interface as the in-process backends.

Prompts are rendered and tokenized here, with the tokenizer of the model folder the stage names
(the served model must be that model: its weights hash keys the cache). ``llm.openai_prompt`` says
what the server is sent, and the cache keys on it:

- ``token_ids``: the tokens, to the legacy ``/completions`` endpoint: the server sees exactly the
  tokens the cache keys on (vLLM's server takes them).
- ``text``: the rendered prompt as text, to ``/completions`` (most servers); its leading
  beginning-of-text token is left to the server, which adds its own.
- ``chat``: the messages, to ``/chat/completions``, rendered by the server's template (hosted chat
  APIs). A prompt that ends with an assistant message asks the server to continue it
  (``continue_final_message``, a vLLM extension); a server that refuses says so in one line.

What each request asks:

- ``generate``: one completion per prompt (temperature, top-p, seed, max tokens).
- option probabilities: one token generated with the server's top log-probabilities
  (``logprobs`` on ``/completions``, ``top_logprobs`` on chat); an option outside the top list gets
  probability 0, and a prompt with none of them in it NaN (the stage records it as not scored, as
  it does a prompt too long).
- completion log-probabilities: ``echo`` with ``logprobs`` and no new token, the prompt's own
  token log-probabilities (vLLM supports it; many servers do not; no chat API does).

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

from humpback.llm.base import FolderTokenizerModel, Generation, Prompt, SamplingConfig
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

    def _post(self, body: dict[str, Any], capability: str, endpoint: str = "/completions") -> dict[str, Any]:
        """POST with retries; a 4xx other than rate limits is the server saying it cannot."""
        body = {"model": self.config.served_model, **body}
        delay = 1.0
        for attempt in range(self.config.max_retries + 1):
            try:
                response = self._client.post(endpoint, json=body)
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

    def _prompt(self, ids: list[int]) -> list[int] | str:
        """What ``/completions`` is sent for these tokens: the tokens, or their text without the
        leading beginning-of-text token (the server adds its own when it tokenizes)."""
        if self.config.openai_prompt == "token_ids":
            return ids
        bos = self.tokenizer.bos_token_id
        return self.tokenizer.decode(ids[1:] if ids and bos is not None and ids[0] == bos else ids)

    def _chat(self, prompt: Prompt) -> dict[str, Any]:
        """The messages of a chat request; a last assistant message is continued, not answered."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if messages[-1]["role"] == "assistant":
            return {"messages": messages, "add_generation_prompt": False, "continue_final_message": True}
        return {"messages": messages}

    def _generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        return self._generate_requests(prompt_ids, sampling, seeds, None)

    def _generate_requests(
        self, prompt_ids: list[list[int]], sampling: SamplingConfig, seeds: list[int], prompts: list[Prompt] | None
    ) -> list[Generation]:
        chat = self._needs_prompts(prompts)
        settings = {
            "max_tokens": sampling.max_new_tokens,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
        }

        def one(index: int) -> Generation:
            if chat:
                answer = self._post(
                    {**self._chat(prompts[index]), **settings, "seed": seeds[index]},
                    "text generation from chat messages",
                    "/chat/completions",
                )
                choice = answer["choices"][0]
                text = choice["message"].get("content") or ""
            else:
                answer = self._post(
                    {
                        "prompt": self._prompt(prompt_ids[index]),
                        **settings,
                        "seed": seeds[index],
                        "stop_token_ids": self.stop_token_ids,
                    },
                    f"text generation from {self.config.openai_prompt} prompts",
                )
                choice = answer["choices"][0]
                text = choice["text"]
            return Generation(text, choice.get("finish_reason") == "length")

        return self._map(one, list(range(len(prompt_ids))))

    def _option_logprobs(self, prompt_ids: list[list[int]], option_ids: list[int]) -> np.ndarray:
        return self._option_requests(prompt_ids, option_ids, None)

    def _option_requests(
        self, prompt_ids: list[list[int]], option_ids: list[int], prompts: list[Prompt] | None
    ) -> np.ndarray:
        options = [self.tokenizer.decode([token]) for token in option_ids]
        chat = self._needs_prompts(prompts)
        top_count = max(20, len(options))

        def one(index: int) -> list[float]:
            if chat:
                answer = self._post(
                    {
                        **self._chat(prompts[index]),
                        "max_tokens": 1,
                        "temperature": 0.0,
                        "logprobs": True,
                        "top_logprobs": top_count,
                    },
                    "top log-probabilities (option probabilities)",
                    "/chat/completions",
                )
                content = (answer["choices"][0].get("logprobs") or {}).get("content") or [{}]
                top = {entry["token"]: entry["logprob"] for entry in content[0].get("top_logprobs") or []}
            else:
                answer = self._post(
                    {
                        "prompt": self._prompt(prompt_ids[index]),
                        "max_tokens": 1,
                        "temperature": 0.0,
                        "logprobs": top_count,
                    },
                    "top log-probabilities (option probabilities)",
                )
                top = ((answer["choices"][0].get("logprobs") or {}).get("top_logprobs") or [{}])[0]
            if not top:
                raise ServerCapabilityError(
                    f"{self.config.base_url} returned no top log-probabilities: option probabilities need them"
                )
            values = [float(top.get(option, -np.inf)) for option in options]
            # none of the options among the top tokens: unknown, not zero (argmax would pick the first)
            return [np.nan] * len(options) if np.isneginf(values).all() else values

        return np.array(self._map(one, list(range(len(prompt_ids)))), dtype=np.float64)

    def _needs_prompts(self, prompts: list[Prompt] | None) -> bool:
        if self.config.openai_prompt != "chat":
            return False
        if prompts is None:
            raise ValueError("llm.openai_prompt chat sends each prompt's messages: pass the prompts with their ids")
        return True

    def _token_logprobs(self, sequences: list[list[int]], starts: list[int]) -> list[np.ndarray]:
        if self.config.openai_prompt == "chat":
            raise ServerCapabilityError(
                "llm.openai_prompt is chat, and chat APIs cannot score given completions (no echo of the prompt's "
                "log-probabilities): score with token_ids or text against a server that echoes them, e.g. vllm serve"
            )

        def one(item: tuple[list[int], int]) -> np.ndarray:
            ids, start = item
            answer = self._post(
                {"prompt": self._prompt(ids), "max_tokens": 1, "temperature": 0.0, "echo": True, "logprobs": 1},
                "prompt log-probabilities (echo)",
            )
            values = (answer["choices"][0].get("logprobs") or {}).get("token_logprobs")
            if not values or len(values) < len(ids):
                raise ServerCapabilityError(
                    f"{self.config.base_url} did not echo the prompt's log-probabilities: "
                    "completion log-probabilities need `echo` with `logprobs`"
                )
            if len(values) > len(ids) + 1:  # the prompt's tokens and the one generated
                raise ServerCapabilityError(
                    f"{self.config.base_url} tokenized the text into {len(values) - 1} tokens, the model folder's "
                    f"tokenizer into {len(ids)}: score completions with llm.openai_prompt token_ids"
                )
            return np.array(values[start : len(ids)], dtype=np.float64)

        return self._map(one, list(zip(sequences, starts)))
