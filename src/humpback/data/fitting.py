"""Examples as a training keeps them: cut to ``max_length`` tokens the way the trainer would see them.

Training cuts an over-long example on its long side; curation scores a pair as it will train, so
both read this module: a scorer that saw the whole document would rank text no model learns from.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pandas as pd

from humpback.llm.base import chat_token_ids
from humpback.params import TrainingParams
from humpback.prompts import forward_chat

#: tokens left free when cutting: re-encoding decoded text can merge a token or two differently, and
#: TRL would then cut the end of the sequence, the answer-end token with it
CUT_MARGIN = 2


def fit_to_length(
    source: str, target: str, chat: Any, tokenizer: Any, params: TrainingParams
) -> tuple[str, str, bool] | None:
    """(source, target, cut) that fit ``max_length`` tokens, or None (dropped).

    ``chat(source)`` is the prompt and ``target`` the completion. Under ``truncate`` the long side is
    cut: the answer of a forward example, the document of a backward one (its instruction must stay
    whole: it is what the model learns to write). TRL would cut the end silently, and a long prompt
    could leave no completion at all: an example that teaches nothing.
    """
    answer = [{"role": "assistant", "content": target}]
    full = chat_token_ids(tokenizer, chat(source) + answer, add_generation_prompt=False)
    if len(full) <= params.max_length:
        return source, target, False
    if params.overlong != "truncate":
        return None
    cut_source = params.direction == "backward"
    ids = tokenizer.encode(source if cut_source else target, add_special_tokens=False)
    room = params.max_length - (len(full) - len(ids)) - CUT_MARGIN  # template and the other side stay
    if room < (32 if cut_source else 8):
        return None
    text = tokenizer.decode(ids[:room]).strip()
    return (text, target, True) if cut_source else (source, text, True)


def answers_as_trained(
    instructions: pd.Series, responses: pd.Series, tag: str | None, tokenizer: Any, params: TrainingParams
) -> tuple[pd.Series, int]:
    """Each response as a forward training under ``params`` keeps it after its instruction (under
    ``tag``), and how many were cut. A pair training would drop (no room left for an answer) keeps
    its whole response: its score does not decide whether it trains."""
    chat = partial(forward_chat, tag=tag if params.use_tags else None)
    kept, cut = [], 0
    for instruction, response in zip(instructions, responses):
        fitted = fit_to_length(instruction.strip(), response.strip(), chat, tokenizer, params)
        kept.append(fitted[1] if fitted else response)
        cut += bool(fitted and fitted[2])
    return pd.Series(kept, index=responses.index, dtype=object), cut
