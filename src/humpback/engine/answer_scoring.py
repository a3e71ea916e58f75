"""Teacher-forced scores of answers after their instructions, for every stage that needs one.

Evaluation scores reference answers and ranked replies with it; curation's likelihood scorers score
candidate answers with it (under the curating model, under an instruction that names no topic, and
under the base model). One prompt format and one way of leaving out the end token, so a figure in
evaluation and a score in curation mean the same thing.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.engine.caches import cached_tokenizer
from humpback.engine.runner import CompletionLogprobs, ModelTask, parse_completion_nll, run_model_task
from humpback.llm import LLMConfig
from humpback.llm.base import closing_token_count
from humpback.params import GenerationRunParams
from humpback.prompts import forward_chat


def answer_tag(model: CheckpointHandle) -> str | None:
    """Trained forward models answer under the assistant tag they were trained with (as the paper
    does at inference); other models get the bare request (None)."""
    hyper = model.metadata.get("hyperparameters", {})
    return "assistant" if hyper.get("use_tags") and hyper.get("direction") == "forward" else None


def tagged_prompt(tag: str | None, row: dict[str, Any]):
    return forward_chat(row["instruction"], tag)


def parse_answer_nll(column: str, closing_tokens: int, rows: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """:func:`parse_completion_nll`'s columns for ``column``, and the same without the prompt format's
    ``closing_tokens`` (``<column>_content_*``): what the answer says, apart from where it stops."""
    parsed = parse_completion_nll(column, rows, raw)
    content = [s[: len(s) - closing_tokens] if s is not None else None for s in raw["token_logprobs"]]
    return parsed.assign(
        **{
            f"{column}_content_tokens": [len(s) if s is not None else 0 for s in content],
            f"{column}_content_nll": [-float(np.sum(s)) if s is not None else math.nan for s in content],
        }
    )


def score_answers(
    name: str,
    rows: pd.DataFrame,
    column: str,
    tag: str | None,
    model: CheckpointHandle,
    llm: LLMConfig,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """Teacher-forced NLL of the answers in ``column`` after each row's ``instruction``, under ``tag``
    (:func:`parse_answer_nll`'s columns, with ``status``)."""
    prompt = partial(tagged_prompt, tag)
    closing = closing_token_count(cached_tokenizer(model.path, llm.trust_remote_code), prompt({"instruction": "?"}))
    task = ModelTask(
        name=name,
        reads=("instruction",),
        prompt=prompt,
        request=CompletionLogprobs(column),
        parse=partial(parse_answer_nll, column, closing),
        status="status",
    )
    return run_model_task(task, rows, model, llm, generation)


def content_nll_per_token(scored: pd.DataFrame, column: str) -> np.ndarray:
    """Per-token NLL of each answer's text, end token left out (NaN where it did not fit)."""
    tokens = scored[f"{column}_content_tokens"].to_numpy(float)
    return scored[f"{column}_content_nll"].to_numpy(float) / np.where(tokens > 0, tokens, np.nan)
