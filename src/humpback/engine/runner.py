"""One runner for every model stage: a stage says *what* to ask, the runner does the rest.

A :class:`ModelTask` is a small frozen spec (in the style of distilabel's tasks): how a row becomes
a prompt, what is asked of the model (:class:`Generate`, :class:`OptionProbabilities`,
:class:`CompletionLogprobs`) and a pure parser from raw outputs to columns plus a status.
:func:`run_model_task` then, for every stage alike:

1. checks the rows have the columns the task reads;
2. renders every prompt and tokenizes it with the model's own tokenizer, once;
3. keys the cache on what the model actually sees: the prompt token ids of each row, the request
   (sampling, option tokens, stop tokens), the weights' hash and the backend settings that can
   change an output (never cosmetic ones such as the progress bar). Editing a template, a few-shot
   example or a tag therefore recomputes exactly the rows whose tokens changed shard by shard;
4. runs the missing shards in this process or on Ray (:mod:`humpback.engine.execution`), resumably;
5. parses the raw outputs, checks one status per row and logs the status counts.

Raw outputs are what is cached, not parsed ones: a parser fix needs no model call.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.engine.caches import cached_tokenizer, weights_identity
from humpback.engine.execution import KEPT_MODEL, map_with_model
from humpback.llm import LanguageModel, LLMConfig, Prompt, PromptError, SamplingConfig
from humpback.llm.base import encode_completion, encode_prompt, stop_token_ids
from humpback.params import GenerationRunParams

logger = logging.getLogger(__name__)

PROMPT_IDS, COMPLETION_START = "prompt_ids", "completion_start"
#: each row's prompt as JSON, for a backend sent messages rather than tokens (``llm.sends_chats``)
PROMPT_SENT = "prompt_sent"
#: what the runner itself knows of a row: the model answered it, its prompt did not fit the context,
#: or its generation was cut at ``max_new_tokens`` (not usable as an instruction, rewrite or rating)
OK, PROMPT_TOO_LONG, TRUNCATED = "ok", "prompt_too_long", "truncated"


class TaskInputError(ValueError):
    """The rows given to a task lack what it reads, or a parser broke its contract."""


@dataclass(frozen=True)
class Generate:
    """Free generation; raw output columns ``output`` (None: the prompt did not fit the context) and
    ``truncated`` (the output ended at ``max_new_tokens``, not at a stop token or string)."""

    sampling: SamplingConfig

    def describe(self, tokenizer: Any, model_path: str) -> dict[str, Any]:
        return {
            "generate": self.sampling.model_dump(),
            "stop_token_ids": stop_token_ids(model_path, tokenizer),
            "columns": ["output", "truncated"],  # shards of the one-column format are not reused
        }

    def answer(self, model: LanguageModel, requests: pd.DataFrame) -> pd.DataFrame:
        generated = model.generate_ids(_ids(requests), self.sampling, _prompts(requests))
        return pd.DataFrame(
            {
                "output": pd.Series([None if g is None else g.text for g in generated], dtype=object),
                "truncated": [bool(g is not None and g.truncated) for g in generated],
            }
        )

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame({"output": pd.Series(dtype=object), "truncated": pd.Series(dtype=bool)})


@dataclass(frozen=True)
class OptionProbabilities:
    """Probability of each one-token option as the next token; one raw column per option (NaN:
    the prompt did not fit the context)."""

    options: tuple[str, ...]

    def describe(self, tokenizer: Any, model_path: str) -> dict[str, Any]:
        return {"options": [tokenizer.encode(option, add_special_tokens=False) for option in self.options]}

    def answer(self, model: LanguageModel, requests: pd.DataFrame) -> pd.DataFrame:
        probabilities = model.option_probabilities_ids(_ids(requests), self.options, _prompts(requests))
        return pd.DataFrame(probabilities, columns=list(self.options))

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame({option: pd.Series(dtype=float) for option in self.options})


@dataclass(frozen=True)
class CompletionLogprobs:
    """Teacher-forced log-probability of each token of the text in column ``completion`` after the
    prompt; raw output column ``token_logprobs`` (None: prompt and completion do not fit)."""

    completion: str

    def describe(self, tokenizer: Any, model_path: str) -> dict[str, Any]:
        return {"completion_logprobs": True}  # the completion's tokens are in each row's key

    def answer(self, model: LanguageModel, requests: pd.DataFrame) -> pd.DataFrame:
        scored = model.completion_logprobs_ids(_ids(requests), requests[COMPLETION_START].astype(int).tolist())
        return pd.DataFrame({"token_logprobs": pd.Series(scored, dtype=object)})

    def empty(self) -> pd.DataFrame:
        return pd.DataFrame({"token_logprobs": pd.Series(dtype=object)})


def parse_completion_nll(column: str, rows: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The parser of a :class:`CompletionLogprobs` task that scores ``column``: its token count, its
    negative log-likelihood (summed over tokens; NaN when it did not fit) and a status."""
    scored = raw["token_logprobs"]
    return pd.DataFrame(
        {
            f"{column}_tokens": [len(s) if s is not None else 0 for s in scored],
            f"{column}_nll": [-float(np.sum(s)) if s is not None else math.nan for s in scored],
            "status": [OK if s is not None else PROMPT_TOO_LONG for s in scored],
        }
    )


Request = Generate | OptionProbabilities | CompletionLogprobs
#: (input rows, raw outputs) -> the stage's columns, one row per input row, including the status
Parser = Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class ModelTask:
    """What a model stage asks, row by row. ``prompt`` and ``parse`` are module-level functions
    (or partials of them), so a task can be pickled."""

    #: stage name: shard folder and log lines
    name: str
    #: input columns ``prompt`` (and a completion request) read
    reads: tuple[str, ...]
    prompt: Callable[[Mapping[str, Any]], Prompt]
    request: Request
    parse: Parser
    #: the column of the parsed result that says how each row went
    status: str


def run_model_task(
    task: ModelTask, rows: pd.DataFrame, model: CheckpointHandle, llm: LLMConfig, generation: GenerationRunParams
) -> pd.DataFrame:
    """``rows`` with the task's parsed columns (same order, index reset), computed by ``model``."""
    reads = (*task.reads, *([task.request.completion] if isinstance(task.request, CompletionLogprobs) else []))
    missing = [column for column in reads if column not in rows.columns]
    if missing:
        raise TaskInputError(f"{task.name}: the input rows lack column(s) {missing}; they have {list(rows.columns)}")
    rows = rows.reset_index(drop=True)
    if isinstance(task.request, CompletionLogprobs):
        llm = llm.for_completion_scoring()
    if rows.empty:  # nothing to ask: no model is loaded
        raw = task.request.empty()
    else:
        tokenizer = KEPT_MODEL.built_tokenizer(llm, model.path)
        if tokenizer is None:
            tokenizer = cached_tokenizer(model.path, llm.trust_remote_code)
        requests = _encode(task, rows, tokenizer, llm.sends_chats)
        settings = {
            "request": task.request.describe(tokenizer, model.path),
            "weights": weights_identity(model),
            "backend": llm.output_settings(),
        }
        del tokenizer  # not held while an engine starts: it may bring its own (see KeptModel)
        raw = map_with_model(
            requests,
            task.request.answer,  # a bound method of a frozen dataclass: picklable for Ray
            llm=llm,
            model_path=model.path,
            generation=generation,
            stage=task.name,
            settings_key=_digest(json.dumps(settings, sort_keys=True, default=str).encode()),
            row_keys=_row_keys(requests),
        )
    parsed = task.parse(rows, raw.reset_index(drop=True))
    if len(parsed) != len(rows) or task.status not in parsed.columns:
        raise TaskInputError(f"{task.name}: the parser must return one row per input row with column {task.status!r}")
    counts = parsed[task.status].value_counts(dropna=False)
    logger.info("%s: %d rows; %s", task.name, len(rows), ", ".join(f"{status} {n}" for status, n in counts.items()))
    kept = rows.drop(columns=[column for column in parsed.columns if column in rows.columns])
    return pd.concat([kept, parsed.reset_index(drop=True)], axis=1)


def _encode(task: ModelTask, rows: pd.DataFrame, tokenizer: Any, with_prompts: bool = False) -> pd.DataFrame:
    """Each row's token ids (prompt, or prompt + completion with the completion's start), and with
    ``with_prompts`` the prompt itself as JSON (what a chat API is sent)."""
    ids, starts, sent = [], [], []
    for index, row in enumerate(rows.to_dict("records")):
        prompt = task.prompt(row)
        try:
            if isinstance(task.request, CompletionLogprobs):
                sequence, start = encode_completion(tokenizer, prompt, row[task.request.completion], index)
            else:
                sequence, start = encode_prompt(tokenizer, prompt, index), 0
        except PromptError as error:
            raise TaskInputError(f"{task.name}: row {index}: {error}") from error
        ids.append(sequence)
        starts.append(start)
        sent.append(json.dumps(prompt, sort_keys=True))
    requests = pd.DataFrame({PROMPT_IDS: ids, COMPLETION_START: starts})
    return requests.assign(**{PROMPT_SENT: sent}) if with_prompts else requests


def _ids(requests: pd.DataFrame) -> list[list[int]]:
    return [[int(token) for token in ids] for ids in requests[PROMPT_IDS]]


def _prompts(requests: pd.DataFrame) -> list[Prompt] | None:
    return [json.loads(prompt) for prompt in requests[PROMPT_SENT]] if PROMPT_SENT in requests else None


def _row_keys(requests: pd.DataFrame) -> list[str]:
    """Each row's cache key: its tokens, and the messages where those are what is sent."""
    keys = [_row_key(ids, start) for ids, start in zip(requests[PROMPT_IDS], requests[COMPLETION_START])]
    if PROMPT_SENT in requests:
        keys = [_digest((key + sent).encode()) for key, sent in zip(keys, requests[PROMPT_SENT])]
    return keys


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _row_key(ids: list[int], start: int) -> str:
    return _digest(np.asarray(ids, dtype=np.int64).tobytes() + start.to_bytes(8, "little"))
