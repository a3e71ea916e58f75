"""The interface every backend implements, and the request checks they share."""

from __future__ import annotations

import abc
import functools
import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from humpback.llm.config import LLMConfig
from humpback.llm.tokenizer import load_tokenizer

#: A chat (list of {"role", "content"} messages) rendered with the model's chat template, or a raw
#: string given to the model as it is. A chat that ends with an assistant message asks the model to
#: continue that answer (e.g. "Score: ", so the next token is the score).
Prompt = str | list[dict[str, str]]


class Generation(NamedTuple):
    """One generated text, and whether it was cut: it ended at ``max_new_tokens``, not at a stop
    token or stop string (a cut instruction or rewrite is not a usable one)."""

    text: str
    truncated: bool


class PromptError(ValueError):
    """A request the model cannot serve: empty, too long, or an option that is not one token."""


class SamplingConfig(BaseModel):
    """Sampling settings of one ``generate`` call; temperature 0 means greedy decoding."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: sampling temperature (0: greedy)
    temperature: float = Field(ge=0)
    #: nucleus sampling
    top_p: float = Field(gt=0, le=1)
    #: longest generation; one cut here has the status truncated
    max_new_tokens: int = Field(gt=0)
    #: strings that end the output (returned without them); the model's stop tokens always apply
    stop: list[str]
    #: None: the backend's seed (``llm.seed``)
    seed: int | None


class LanguageModel(abc.ABC):
    """Generate text, score fixed options and score given completions; built from an
    :class:`LLMConfig` and a model folder."""

    def __init__(self, config: LLMConfig, model_path: str) -> None:
        self.config = config
        self.model_path = model_path

    def close(self) -> None:  # noqa: B027 - optional: backends without an engine have nothing to release
        """Release the engine (processes, memory); the object is unusable afterwards."""

    def __enter__(self) -> LanguageModel:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @property
    @abc.abstractmethod
    def tokenizer(self) -> Any: ...

    @property
    @abc.abstractmethod
    def context_length(self) -> int: ...

    @functools.cached_property
    def stop_token_ids(self) -> list[int]:
        return stop_token_ids(self.model_path, self.tokenizer)

    @abc.abstractmethod
    def _generate(self, prompt_ids: list[list[int]], sampling: SamplingConfig, seeds: list[int]) -> list[Generation]:
        """One completion per prompt, the i-th sampled with ``seeds[i]``."""

    @abc.abstractmethod
    def _option_logprobs(self, prompt_ids: list[list[int]], option_ids: list[int]) -> np.ndarray: ...

    @abc.abstractmethod
    def _token_logprobs(self, sequences: list[list[int]], starts: list[int]) -> list[np.ndarray]:
        """Log-probability of each token ``sequences[i][starts[i]:]`` given the tokens before it."""

    # --- One API, two doors: text prompts are encoded, then served like already-encoded ones -----
    # A request too long for the context is not an error: its answer is None (NaN for options), so
    # a stage records the row with a status and goes on. An empty prompt or a bad option is an error.

    def generate(self, prompts: Sequence[Prompt], sampling: SamplingConfig) -> list[str | None]:
        """One completion per prompt, in the order given (None: the prompt leaves no room to answer)."""
        return [None if g is None else g.text for g in self.generate_ids(self.encode(prompts), sampling)]

    def score_options(self, prompts: Sequence[Prompt], options: Sequence[str]) -> np.ndarray:
        """Probability of each option as the very next token: shape (len(prompts), len(options)).

        One forward pass per prompt, no free generation. Probabilities are not renormalised over
        the options, so their row sum tells how much of the model's mass the options hold.
        """
        return self.option_probabilities_ids(self.encode(prompts), options)

    def completion_logprobs(self, prompts: Sequence[Prompt], completions: Sequence[str]) -> list[np.ndarray | None]:
        """Log-probability of every token of each given completion after its prompt (teacher forcing).

        The completion is scored as the model would have to write it: for a chat prompt, the
        assistant turn as the chat template closes it (end-of-turn token included). The prompt's
        tokens are exactly those :meth:`generate` would see.
        """
        if len(prompts) != len(completions):
            raise PromptError(f"{len(prompts)} prompts but {len(completions)} completions")
        encoded = [
            encode_completion(self.tokenizer, p, c, index) for index, (p, c) in enumerate(zip(prompts, completions))
        ]
        return self.completion_logprobs_ids([sequence for sequence, _ in encoded], [start for _, start in encoded])

    # ``prompts`` (below): the prompts the ids encode, for a backend sent messages rather than tokens
    # (a chat API); every other backend reads the ids alone.

    def generate_ids(
        self, prompt_ids: Sequence[list[int]], sampling: SamplingConfig, prompts: Sequence[Prompt] | None = None
    ) -> list[Generation | None]:
        fits = [len(ids) <= self.context_length - sampling.max_new_tokens for ids in prompt_ids]
        kept = [index for index, ok in enumerate(fits) if ok]
        texts = iter(self._generate_checked([prompt_ids[i] for i in kept], sampling, _subset(prompts, kept)))
        return [next(texts) if ok else None for ok in fits]

    def option_probabilities_ids(
        self, prompt_ids: Sequence[list[int]], options: Sequence[str], prompts: Sequence[Prompt] | None = None
    ) -> np.ndarray:
        option_ids = self.option_token_ids(options)
        fits = np.array([len(ids) <= self.context_length - 1 for ids in prompt_ids], dtype=bool)
        scores = np.full((len(prompt_ids), len(options)), np.nan)
        kept = np.flatnonzero(fits).tolist()
        if kept:
            logprobs = self._option_requests([prompt_ids[i] for i in kept], option_ids, _subset(prompts, kept))
            scores[fits] = np.exp(logprobs)
        return scores

    def _generate_requests(
        self, prompt_ids: list[list[int]], sampling: SamplingConfig, seeds: list[int], prompts: list[Prompt] | None
    ) -> list[Generation]:
        return self._generate(prompt_ids, sampling, seeds)

    def _option_requests(self, prompt_ids: list[list[int]], option_ids: list[int], prompts: list[Prompt] | None):
        return self._option_logprobs(prompt_ids, option_ids)

    def completion_logprobs_ids(self, sequences: Sequence[list[int]], starts: Sequence[int]) -> list[np.ndarray | None]:
        fits = [len(sequence) <= self.context_length for sequence in sequences]
        kept = [(sequence, start) for sequence, start, ok in zip(sequences, starts, fits) if ok]
        scored = iter(self._token_logprobs([s for s, _ in kept], [start for _, start in kept]) if kept else [])
        return [next(scored) if ok else None for ok in fits]

    def _generate_checked(
        self, prompt_ids: list[list[int]], sampling: SamplingConfig, prompts: list[Prompt] | None = None
    ) -> list[Generation]:
        if not prompt_ids:
            return []
        seeds = request_seeds(prompt_ids, sampling.seed if sampling.seed is not None else self.config.seed)
        generated = []
        for text, truncated in self._generate_requests(prompt_ids, sampling, seeds, prompts):
            cut = _cut_at_stop(text, sampling.stop)
            generated.append(Generation(cut, truncated and cut == text))  # a stop string ended it
        return generated

    def option_token_ids(self, options: Sequence[str]) -> list[int]:
        if not options:
            raise PromptError("score_options needs at least one option")
        ids = []
        for option in options:
            encoded = self.tokenizer.encode(option, add_special_tokens=False)
            if len(encoded) != 1:
                raise PromptError(
                    f"option {option!r} is {len(encoded)} tokens for this tokenizer; options must be one token"
                )
            ids.append(encoded[0])
        if len(set(ids)) != len(ids):
            raise PromptError(f"options {list(options)} map to repeated tokens")
        return ids

    def render(self, prompt: Prompt) -> str:
        """The exact text the model sees for ``prompt``."""
        return render_prompt(self.tokenizer, prompt)

    def encode(self, prompts: Sequence[Prompt]) -> list[list[int]]:
        """Token ids of every prompt as the model sees it; an empty prompt is refused."""
        return [encode_prompt(self.tokenizer, prompt, index) for index, prompt in enumerate(prompts)]


def _subset(prompts: Sequence[Prompt] | None, kept: list[int]) -> list[Prompt] | None:
    return None if prompts is None else [prompts[index] for index in kept]


def request_seeds(prompt_ids: Sequence[list[int]], seed: int) -> list[int]:
    """One sampling seed per request, from the run's seed and the tokens the model sees.

    Requests never share a seed (with one seed for all, vLLM's CUDA sampler gives prompts of equal
    length the same noise, so their outputs are correlated), and a request gets the same seed
    whatever batch or shard it is computed in: a resumed run regenerates exactly what it lost.
    """
    prefix = seed.to_bytes(8, "little", signed=True)
    return [
        int.from_bytes(hashlib.sha256(prefix + np.asarray(ids, dtype=np.int64).tobytes()).digest()[:4], "little")
        >> 1  # a non-negative 31-bit seed: every backend accepts it
        for ids in prompt_ids
    ]


def encode_prompt(tokenizer: Any, prompt: Prompt, index: int = 0) -> list[int]:
    """Token ids of a prompt as the model sees it; an empty prompt is refused."""
    if _is_empty(prompt):
        raise PromptError(f"prompt {index} is empty")
    return chat_token_ids(tokenizer, prompt)


def encode_completion(tokenizer: Any, prompt: Prompt, completion: str, index: int = 0) -> tuple[list[int], int]:
    """(prompt + completion token ids, index of the first completion token) of a scored pair."""
    if not str(completion).strip():
        raise PromptError(f"completion {index} is empty")
    prompt_ids = encode_prompt(tokenizer, prompt, index)
    completion_ids = tokenizer.encode(_completion_text(tokenizer, prompt, completion), add_special_tokens=False)
    return prompt_ids + completion_ids, len(prompt_ids)


def closing_token_count(tokenizer: Any, prompt: Prompt) -> int:
    """Tokens the prompt format puts after a reply's text (its end-of-turn token): the part of a
    scored answer that says where it stops rather than what it says."""
    probe = "Yes."
    following = _completion_text(tokenizer, prompt, probe)
    if not following.startswith(probe):
        raise PromptError("this chat template changes a reply's text; its closing tokens cannot be counted")
    closing = following[len(probe) :]
    return len(tokenizer.encode(closing, add_special_tokens=False)) if closing else 0


def stop_token_ids(model_path: str, tokenizer: Any) -> list[int]:
    """Tokens that end an answer: the checkpoint's generation config (where materialising the
    model put the token its chat template ends answers with), else the tokenizer's eos."""
    from transformers import GenerationConfig

    try:
        configured = GenerationConfig.from_pretrained(model_path).eos_token_id
    except OSError:  # no generation_config.json: a folder not saved by this project, or a Hub id offline
        configured = None
    ids = [] if configured is None else [configured] if isinstance(configured, int) else list(configured)
    return ids or ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])


def render_prompt(tokenizer: Any, prompt: Prompt, add_generation_prompt: bool = True) -> str:
    """A chat rendered with the tokenizer's chat template (raw strings pass through).

    A chat ending with an assistant message is an answer to continue: the chat before it is
    rendered with the generation prompt and the answer's opening follows verbatim (templates would
    close the turn, or trim a trailing space that decides the next token).
    """
    if isinstance(prompt, str):
        return prompt
    if not tokenizer.chat_template:
        raise PromptError(
            "this model has no chat template: materialise it with the base_model pipeline, which gives "
            "template-less models the project's prompt format (base_model.chat_template), or pass raw strings"
        )
    if add_generation_prompt and prompt[-1].get("role") == "assistant":
        opened = tokenizer.apply_chat_template(prompt[:-1], tokenize=False, add_generation_prompt=True)
        return opened + prompt[-1]["content"]
    return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=add_generation_prompt)


def chat_token_ids(tokenizer: Any, prompt: Prompt, add_generation_prompt: bool = True) -> list[int]:
    """Token ids of a rendered prompt (the template already holds the special tokens)."""
    return tokenizer.encode(render_prompt(tokenizer, prompt, add_generation_prompt), add_special_tokens=False)


def _completion_text(tokenizer: Any, prompt: Prompt, completion: str) -> str:
    """The text that follows the rendered prompt when ``completion`` is the assistant's reply."""
    if isinstance(prompt, str):
        return completion
    opened = render_prompt(tokenizer, prompt)
    closed = render_prompt(
        tokenizer, [*prompt, {"role": "assistant", "content": completion}], add_generation_prompt=False
    )
    if not closed.startswith(opened):
        raise PromptError("this chat template renders a reply that does not extend the prompt; pass raw string prompts")
    return closed[len(opened) :]


def _is_empty(prompt: Prompt) -> bool:
    if isinstance(prompt, str):
        return not prompt.strip()
    # a system prompt alone asks nothing: a chat is empty when no user or assistant turn has text
    return not any(str(m.get("content", "")).strip() for m in prompt if m.get("role") != "system")


def _cut_at_stop(text: str, stop: list[str]) -> str:
    """Trim at the first stop string; both backends return text without it."""
    cut = min((text.find(s) for s in stop if s and s in text), default=-1)
    return text[:cut] if cut >= 0 else text


class FolderTokenizerModel(LanguageModel):
    """A backend whose answers come from elsewhere (a rule, a server) but whose tokens are the model
    folder's: the tokenizer and the context length (``llm.max_model_len`` caps the model's own)."""

    def __init__(self, config: LLMConfig, model_path: str) -> None:
        super().__init__(config, model_path)
        from transformers import AutoConfig

        self._tokenizer = load_tokenizer(model_path, trust_remote_code=config.trust_remote_code)
        own = AutoConfig.from_pretrained(model_path).max_position_embeddings
        self._context_length = min(config.max_model_len or own, own)

    @property
    def tokenizer(self):
        return self._tokenizer

    @property
    def context_length(self) -> int:
        return self._context_length
