"""Turn (instruction, response, source) rows into tagged prompt/completion examples for SFT.

The same rows train three models: the backward model reads the response and writes the
instruction; the seed model and M0 read the instruction and write the response. The loss falls on
the completion only (TRL's prompt/completion format), so a model is never trained to write its
own prompt. Order of the rules, each counted in the funnel: unusable rows, pairs whose instruction
overlaps an evaluation prompt (decontamination), over-long examples (dropped, or cut on the long
side — the answer forward, the document backward — with the tokenizer the model trains with), the
cap on the training set (so it counts usable examples), then a few seed pairs held out to measure
the loss before and after.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import pandas as pd

from humpback.data.dedup import contamination_overlap
from humpback.data.fitting import fit_to_length
from humpback.data.funnel import Funnel
from humpback.data.records import require_columns, stable_order_key
from humpback.params import DecontaminationParams, TrainingParams
from humpback.prompts import backward_chat, forward_chat

#: which system-prompt tag each data source trains under (paper, section 2.3)
SOURCE_TAGS = {"seed": "assistant", "augmented": "web"}
TRAIN, HELDOUT = "train", "heldout"
EXAMPLE_COLUMNS = ["prompt", "completion", "source", "split", "truncated"]


class TrainingDataError(ValueError):
    """The training set is empty or unusable; training would fail or learn nothing."""


def _stable_keys(rows: pd.DataFrame, seed: int) -> pd.Series:
    return (rows["instruction"] + "\x00" + rows["response"]).map(lambda v: stable_order_key(v, seed))


def cap_training_set(pairs: pd.DataFrame, max_examples: int | None, seed: int) -> tuple[pd.DataFrame, int]:
    """Keep every seed pair and a seed-stable pseudo-random subset of the others, up to the cap."""
    if max_examples is None or len(pairs) <= max_examples:
        return pairs, 0
    is_seed = pairs["source"] == "seed"
    room = max(max_examples - int(is_seed.sum()), 0)
    others = pairs.loc[~is_seed]
    kept_others = others.loc[_stable_keys(others, seed).sort_values(kind="stable").index[:room]]
    kept = pd.concat([pairs.loc[is_seed], kept_others]).sort_index()
    return kept, len(pairs) - len(kept)


def build_examples(
    pairs: pd.DataFrame,
    tokenizer: Any,
    params: TrainingParams,
    evaluation_prompts: Sequence[str],
    decontamination: DecontaminationParams,
    reserve: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Prompt/completion chats for TRL (``split``: train or heldout), and the funnel of dropped rows.

    Args:
        pairs: rows with instruction, response and source (``seed`` or ``augmented``).
        tokenizer: the tokenizer (and chat template) of the model to train.
        params: this model's training block (direction, tags, length rule, cap, held-out pairs).
        evaluation_prompts: the prompts the models are evaluated on: pairs whose instruction
            overlaps one (``decontamination``) are dropped, so no model trains on its test.
        reserve: seed pairs outside the seed set (``seed_reserve_pairs``): where it holds enough,
            the held-out examples come from it and every pair of ``pairs`` trains.
    """
    require_columns(pairs, ["instruction", "response", "source"], "training pairs")
    reserved = reserve is not None and len(reserve) >= params.heldout_examples > 0
    if reserved:
        pairs = pd.concat([pairs.assign(_reserve=False), reserve.assign(source="seed", _reserve=True)])
        pairs = pairs.reset_index(drop=True)
    else:
        pairs = pairs.assign(_reserve=False)
    funnel = Funnel(f"training_{params.direction}")
    rows = funnel.start(pairs, step="pairs")
    usable = rows["instruction"].map(_has_text).astype(bool) & rows["response"].map(_has_text).astype(bool)
    rows = funnel.drop(rows, ~usable, "empty_text", step="pairs")
    rows = funnel.drop(rows, ~rows["source"].isin(list(SOURCE_TAGS)), "unknown_source", step="pairs")
    if decontamination.enabled:
        overlap = contamination_overlap(
            rows["instruction"].tolist(),
            list(evaluation_prompts),
            decontamination.ngram_words,
            decontamination.min_contained_words,
        )
        rows = funnel.drop(rows, overlap >= decontamination.max_overlap, "overlaps_evaluation_prompt", step="pairs")
    rows = rows.assign(instruction=rows["instruction"].str.strip(), response=rows["response"].str.strip())

    if params.direction == "forward":
        sources, targets = rows["instruction"], rows["response"]
        chats = [
            partial(forward_chat, tag=SOURCE_TAGS[source] if params.use_tags else None) for source in rows["source"]
        ]
    else:
        sources, targets = rows["response"], rows["instruction"]
        chats = [backward_chat] * len(rows)
    fitted = [fit_to_length(s, t, chat, tokenizer, params) for s, t, chat in zip(sources, targets, chats)]
    rows = rows.assign(
        _prompt=[chat(f[0]) if f else None for chat, f in zip(chats, fitted)],
        _completion=[f[1] if f else None for f in fitted],
        truncated=[bool(f and f[2]) for f in fitted],
    )
    rows = funnel.drop(rows, rows["_completion"].isna(), f"longer_than_{params.max_length}_tokens", step="pairs")
    trainable = rows.loc[~rows["_reserve"]]
    capped, _ = cap_training_set(trainable, params.max_examples, params.seed)
    rows = funnel.drop(rows, ~rows.index.isin(capped.index) & ~rows["_reserve"], "over_max_examples", step="pairs")

    candidates = rows.loc[rows["_reserve"]] if reserved else rows.loc[rows["source"] == "seed"]
    heldout = _stable_keys(candidates, params.seed).sort_values(kind="stable").index[: params.heldout_examples]
    rows = funnel.drop(rows, rows["_reserve"] & ~rows.index.isin(heldout), "reserve_not_held_out", step="pairs")
    split = pd.Series(TRAIN, index=rows.index).where(~rows.index.isin(heldout), HELDOUT)
    funnel.drop(rows, split == HELDOUT, "held_out_for_loss", step="pairs")
    if not (split == TRAIN).any():
        raise TrainingDataError(f"no usable training pairs ({len(pairs)} given); see the funnel rules above")
    examples = pd.DataFrame(
        {
            "prompt": rows["_prompt"].to_numpy(),
            "completion": [[{"role": "assistant", "content": text}] for text in rows["_completion"]],
            "source": rows["source"].to_numpy(),
            "split": split.to_numpy(),
            "truncated": rows["truncated"].to_numpy(dtype=bool),
        },
        columns=EXAMPLE_COLUMNS,
    )
    return examples, funnel.to_frame()


def _has_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip())
