"""Turn (instruction, response, source) rows into tagged prompt/completion examples for SFT.

The same rows train three models: the backward model reads the response and writes the
instruction; the seed model and M1 read the instruction and write the response. The loss falls on
the completion only (TRL's prompt/completion format), so a model is never trained to write its
own prompt.
"""

from __future__ import annotations

import pandas as pd

from humpback.funnel import Funnel
from humpback.prompts import backward_chat, forward_chat
from humpback.records import require_columns, stable_order_key

#: which system-prompt tag each data source trains under (paper, section 2.3)
SOURCE_TAGS = {"seed": "assistant", "augmented": "web"}


class TrainingDataError(ValueError):
    """The training set is empty or unusable; training would fail or learn nothing."""


def cap_training_set(pairs: pd.DataFrame, max_examples: int | None, seed: int) -> tuple[pd.DataFrame, int]:
    """Keep every seed pair and a seed-stable pseudo-random subset of the others, up to the cap."""
    if max_examples is None or len(pairs) <= max_examples:
        return pairs, 0
    is_seed = pairs["source"] == "seed"
    room = max(max_examples - int(is_seed.sum()), 0)
    others = pairs.loc[~is_seed]
    keys = (others["instruction"] + "\x00" + others["response"]).map(lambda v: stable_order_key(v, seed))
    kept_others = others.loc[keys.sort_values(kind="stable").index[:room]]
    kept = pd.concat([pairs.loc[is_seed], kept_others]).sort_index()
    return kept, len(pairs) - len(kept)


def build_examples(
    pairs: pd.DataFrame, direction: str, use_tags: bool, max_examples: int | None, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prompt/completion chats for TRL, and the funnel of rows dropped on the way.

    Args:
        pairs: rows with instruction, response and source (``seed`` or ``augmented``).
        direction: ``forward`` (instruction → response) or ``backward`` (response → instruction).
        use_tags: put the source's system-prompt tag in front of forward prompts.
        max_examples: cap on the training set; seed rows are always kept.
    """
    require_columns(pairs, ["instruction", "response", "source"], "training pairs")
    funnel = Funnel(f"training_{direction}")
    rows = funnel.start(pairs, step="pairs")
    usable = rows["instruction"].map(_has_text).astype(bool) & rows["response"].map(_has_text).astype(bool)
    rows = funnel.drop(rows, ~usable, "empty_text", step="pairs")
    rows = funnel.drop(rows, ~rows["source"].isin(list(SOURCE_TAGS)), "unknown_source", step="pairs")
    capped, over = cap_training_set(rows, max_examples, seed)
    rows = funnel.drop(rows, ~rows.index.isin(capped.index), "over_max_examples", step="pairs")
    if rows.empty:
        raise TrainingDataError(f"no usable training pairs ({len(pairs)} given); see the funnel rules above")

    if direction == "forward":
        prompts = [
            forward_chat(instruction.strip(), SOURCE_TAGS[source] if use_tags else None)
            for instruction, source in zip(rows["instruction"], rows["source"])
        ]
        targets = rows["response"].str.strip()
    else:
        prompts = [backward_chat(response.strip()) for response in rows["response"]]
        targets = rows["instruction"].str.strip()
    examples = pd.DataFrame(
        {
            "prompt": prompts,
            "completion": [[{"role": "assistant", "content": text}] for text in targets],
            "source": rows["source"].to_numpy(),
        }
    )
    return examples, funnel.to_frame()


def _has_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
