"""Seed pairs from a user's own instruction data, in the formats the Hugging Face ecosystem uses.

oasst1 message trees are the paper's seed data (:mod:`humpback.data.oasst`); these formats let a
user bring any other first-turn data:
- ``instruction_response``: two text columns;
- ``alpaca``: Alpaca's ``instruction``, ``input`` and ``output``; a row's ``input``, where it has one,
  follows its instruction after a blank line, as Alpaca's own prompt template places it;
- ``prompt_completion``: TRL's prompt/completion, as strings or as lists of chat messages;
- ``messages``: TRL's conversational format, a list of ``{role, content}`` per row;
- ``sharegpt``: ShareGPT's ``conversations``, a list of ``{from, value}`` per row (``human`` and
  ``gpt``, or ``user`` and ``assistant``, …).

Each row is one conversation: its first user turn and the assistant reply right after it make the
pair. A system turn has no place in a pair: it is left out, and the rows that had one are counted
(``system_turn_left_out``). Rows that give no pair are dropped and counted in the funnel, never
silently lost.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from humpback.data.funnel import Funnel
from humpback.data.oasst import finish_seed_pairs
from humpback.data.records import RawDataError, stable_order_key

#: each format's columns, by the names the project gives them; ``ingestion.seed.columns`` renames
FORMAT_COLUMNS = {
    "instruction_response": {"instruction": "instruction", "response": "response"},
    "alpaca": {"instruction": "instruction", "input": "input", "output": "output"},
    "prompt_completion": {"prompt": "prompt", "completion": "completion"},
    "messages": {"messages": "messages"},
    "sharegpt": {"conversations": "conversations"},
}
#: ShareGPT's speaker names, as the exports and TRL's and LLaMA-Factory's readers know them
SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "chatgpt": "assistant",
    "bard": "assistant",
    "bing": "assistant",
    "model": "assistant",
    "assistant": "assistant",
    "system": "system",
}


def _text(value: Any) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _as_messages(value: Any) -> list[Mapping] | None:
    """A cell holding chat messages (a list from JSON, a numpy array from Parquet), else None."""
    if value is None or isinstance(value, str | bytes | Mapping):
        return None
    try:
        messages = list(value)
    except TypeError:
        return None
    return messages if all(isinstance(message, Mapping) for message in messages) else None


def sharegpt_messages(turns: list[Mapping]) -> list[Mapping]:
    """ShareGPT's ``{from, value}`` turns as ``{role, content}`` messages; an unknown speaker keeps
    its name as the role, so no pair is made through it."""
    return [
        {"role": SHAREGPT_ROLES.get(str(turn.get("from", "")).lower(), turn.get("from")), "content": turn.get("value")}
        for turn in turns
    ]


def _has_system_turn(messages: list[Mapping] | None) -> bool:
    return bool(messages) and any(message.get("role") == "system" for message in messages)


def first_turn(messages: list[Mapping]) -> tuple[str | None, str | None]:
    """The first user message and the assistant message right after it (system messages skipped)."""
    turns = [m for m in messages if m.get("role") != "system"]
    for position, message in enumerate(turns[:-1]):
        if message.get("role") == "user":
            reply = turns[position + 1]
            answer = _text(reply.get("content")) if reply.get("role") == "assistant" else None
            return _text(message.get("content")), answer
    return None, None


def _row_messages(row: Mapping, fmt: str, columns: Mapping[str, str]) -> list[Mapping] | None:
    """A conversational row's messages (None: not a list of messages, or a text format)."""
    if fmt == "messages":
        return _as_messages(row[columns["messages"]])
    if fmt == "sharegpt":
        turns = _as_messages(row[columns["conversations"]])
        return sharegpt_messages(turns) if turns is not None else None
    if fmt == "prompt_completion":
        prompt, completion = _as_messages(row[columns["prompt"]]), _as_messages(row[columns["completion"]])
        return prompt + completion if prompt is not None and completion is not None else None
    return None


def _pair_of_row(row: Mapping, fmt: str, columns: Mapping[str, str]) -> tuple[str | None, str | None]:
    if fmt == "instruction_response":
        return _text(row[columns["instruction"]]), _text(row[columns["response"]])
    if fmt == "alpaca":
        instruction, extra = _text(row[columns["instruction"]]), _text(row[columns["input"]])
        joined = f"{instruction}\n\n{extra}" if instruction and extra else instruction
        return joined, _text(row[columns["output"]])
    if fmt == "prompt_completion":
        prompt, completion = row[columns["prompt"]], row[columns["completion"]]
        if isinstance(prompt, str) or isinstance(completion, str):
            return _text(prompt), _text(completion)
    messages = _row_messages(row, fmt, columns)
    return first_turn(messages) if messages is not None else (None, None)


def format_columns(fmt: str, renamed: Mapping[str, str] | None) -> dict[str, str]:
    """The columns ``fmt`` reads, after the user's renames; an unknown rename is an error."""
    columns = dict(FORMAT_COLUMNS[fmt])
    unknown = sorted(set(renamed or {}) - set(columns))
    if unknown:
        raise RawDataError(f"ingestion.seed.columns: {unknown} are not columns of the {fmt!r} format {sorted(columns)}")
    return {**columns, **(renamed or {})}


def select_instruction_pairs(
    records: pd.DataFrame,
    fmt: str,
    columns: Mapping[str, str] | None,
    max_text_chars: int,
    max_pairs: int | None,
    sample_seed: int,
    heldout_fraction: float = 0.0,
    languages: list[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seed pairs (``SEED_COLUMNS``) and their funnel from records in ``fmt``.

    Ids are hashes of the pair's text, so the held-out slice and the order do not depend on the
    file's row order; a ``lang`` column, where present, is filtered by ``languages``.
    """
    needed = format_columns(fmt, columns)
    missing = [column for column in needed.values() if column not in records.columns]
    if missing:
        raise RawDataError(
            f"seed data in {fmt!r} format: missing column(s) {missing}; found {list(records.columns)}. "
            "Set ingestion.seed.format, or map your column names with ingestion.seed.columns."
        )
    funnel = Funnel(f"seed_{fmt}")
    frame = funnel.start(records, step="records")
    if languages and "lang" in frame.columns:
        frame = funnel.drop(frame, ~frame["lang"].isin(languages), "other_language", step="records")
    rows = frame.to_dict("records")
    pairs = [_pair_of_row(row, fmt, needed) for row in rows]
    instructions = pd.Series([p[0] for p in pairs], index=frame.index, dtype=object)
    responses = pd.Series([p[1] for p in pairs], index=frame.index, dtype=object)
    missing_text = instructions.isna() | responses.isna()
    frame = funnel.drop(frame, missing_text, "no_first_turn_pair", step="records")
    system = pd.Series([_has_system_turn(_row_messages(row, fmt, needed)) for row in rows], index=instructions.index)
    funnel.count(system[frame.index], "system_turn_left_out", step="records")
    too_long = (instructions.str.len() > max_text_chars) | (responses.str.len() > max_text_chars)
    frame = funnel.drop(frame, too_long.reindex(frame.index), "text_too_long", step="records")

    tree_ids = [
        stable_order_key(f"{instruction}\n{response}", 0)[:16]
        for instruction, response in zip(instructions[frame.index], responses[frame.index])
    ]
    seed = pd.DataFrame(
        {
            "instruction": instructions[frame.index].to_numpy(),
            "response": responses[frame.index].to_numpy(),
            "source": "seed",
            "message_tree_id": tree_ids,
            "prompt_message_id": [f"{tree}:prompt" for tree in tree_ids],
            "response_message_id": [f"{tree}:response" for tree in tree_ids],
        },
        index=frame.index,
    )
    return finish_seed_pairs(seed, funnel, max_pairs, sample_seed, heldout_fraction)
