"""Seed pairs from OpenAssistant oasst1: first turn of each tree, best-ranked reply.

The paper's seed data is the root prompt of each conversation tree and its direct assistant reply
with human rank 0, English only. Records that could not be trusted (deleted, rejected by review,
synthetic, orphaned, malformed) are dropped and counted, never silently lost.
"""

from __future__ import annotations

import pandas as pd

from humpback.data.funnel import Funnel
from humpback.data.records import require_columns, stable_order_key

SEED_SOURCE = "oasst1"
REQUIRED_COLUMNS = ["message_id", "parent_id", "message_tree_id", "text", "role", "lang", "rank"]
SEED_COLUMNS = [
    "instruction",
    "response",
    "source",
    "message_tree_id",
    "prompt_message_id",
    "response_message_id",
]


def _is_valid_text(value: object, max_chars: int) -> tuple[bool, bool]:
    """Return (usable, oversized) for one text cell."""
    if not isinstance(value, str) or not value.strip():
        return False, False
    return True, len(value) > max_chars


def _flag(frame: pd.DataFrame, column: str, value: object) -> pd.Series:
    """True where an optional boolean column equals ``value``; absent columns flag nothing."""
    if column not in frame.columns:
        return pd.Series(False, index=frame.index)
    return frame[column].map(lambda cell: cell is value or (cell == value if isinstance(cell, bool) else False))


def untrusted_messages(frame: pd.DataFrame, languages: list[str], drop_synthetic: bool) -> list[tuple[str, pd.Series]]:
    """The rules that keep messages out of every use (seed, evaluation), in order, each with the
    rows it rejects: another language, deleted, rejected by review, synthetic (when asked)."""
    rules = [
        ("other_language", ~frame["lang"].isin(languages)),
        ("deleted", _flag(frame, "deleted", True)),
        ("rejected_by_review", _flag(frame, "review_result", False)),
    ]
    return rules + ([("synthetic", _flag(frame, "synthetic", True))] if drop_synthetic else [])


def normalise_for_dedup(text: str) -> str:
    return " ".join(text.lower().split())


def is_held_out(tree_id: str, fraction: float, seed: int) -> bool:
    """Whether a conversation tree belongs to the fixed evaluation slice (stable across runs)."""
    return int(stable_order_key(f"heldout:{tree_id}", seed)[:8], 16) < fraction * 16**8


def select_seed_pairs(
    messages: pd.DataFrame,
    languages: list[str],
    rank: int,
    max_text_chars: int,
    drop_synthetic: bool,
    max_pairs: int | None,
    sample_seed: int,
    heldout_fraction: float = 0.0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Select (root prompt, rank-``rank`` reply) pairs and the funnel of what each rule dropped.

    ``heldout_fraction`` of the conversation trees (a fixed, seed-stable slice) is kept out for
    evaluation, before the cap, so the held-out prompts never depend on ``max_pairs``.
    """
    require_columns(messages, REQUIRED_COLUMNS, "oasst1 messages")
    funnel = Funnel(SEED_SOURCE)
    frame = funnel.start(messages, step="messages")

    validity = frame["text"].map(lambda text: _is_valid_text(text, max_text_chars))
    frame = funnel.drop(frame, ~validity.str[0].astype(bool), "missing_or_empty_text", step="messages")
    frame = funnel.drop(frame, validity.loc[frame.index].str[1], "text_too_long", step="messages")
    ids_ok = frame["message_id"].map(lambda v: isinstance(v, str) and bool(v)).astype(bool)
    frame = funnel.drop(frame, ~ids_ok, "missing_message_id", step="messages")
    frame = funnel.drop(frame, frame["message_id"].duplicated(keep="first"), "duplicate_message_id", step="messages")
    for rule, untrusted in untrusted_messages(frame, languages, drop_synthetic):
        frame = funnel.drop(frame, untrusted.reindex(frame.index), rule, step="messages")
    frame = funnel.drop(frame, ~frame["role"].isin(["prompter", "assistant"]), "unknown_role", step="messages")

    is_root = frame["parent_id"].isna()
    roots = frame.loc[is_root & (frame["role"] == "prompter")]
    replies = frame.loc[~is_root & (frame["role"] == "assistant")]
    # Deeper turns are not errors, just not seed material: count them once, as one rule.
    funnel.drop(frame, ~frame.index.isin(roots.index.union(replies.index)), "not_first_turn_message", step="messages")

    pairs = funnel.start(replies, step="replies")
    pairs = funnel.drop(pairs, ~pairs["parent_id"].isin(set(messages["message_id"])), "orphan_reply", step="replies")
    pairs = funnel.drop(pairs, ~pairs["parent_id"].isin(set(frame["message_id"])), "parent_dropped", step="replies")
    pairs = funnel.drop(
        pairs, ~pairs["parent_id"].isin(set(roots["message_id"])), "not_first_turn_reply", step="replies"
    )
    rank_ok = pd.to_numeric(pairs["rank"], errors="coerce") == rank
    pairs = funnel.drop(pairs, ~rank_ok, f"rank_not_{rank}", step="replies")

    root_text = roots.set_index("message_id")["text"]
    seed = pd.DataFrame(
        {
            "instruction": pairs["parent_id"].map(root_text).str.strip(),
            "response": pairs["text"].str.strip(),
            "source": "seed",
            "message_tree_id": pairs["message_tree_id"].astype(str),
            "prompt_message_id": pairs["parent_id"].astype(str),
            "response_message_id": pairs["message_id"].astype(str),
        }
    )
    seed = funnel.drop(
        seed, seed["prompt_message_id"].duplicated(keep="first"), "second_reply_same_prompt", step="pairs"
    )
    return finish_seed_pairs(seed, funnel, max_pairs, sample_seed, heldout_fraction)


def finish_seed_pairs(
    seed: pd.DataFrame, funnel: Funnel, max_pairs: int | None, sample_seed: int, heldout_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The rules every seed format shares, in order: duplicate instructions, the held-out slice of
    trees, a seed-stable order and the cap. Returns the pairs (``SEED_COLUMNS``) and the funnel."""
    dedup_key = seed["instruction"].map(normalise_for_dedup)
    seed = funnel.drop(seed, dedup_key.duplicated(keep="first"), "duplicate_instruction", step="pairs")

    if heldout_fraction:
        held_out = seed["message_tree_id"].map(lambda tree: is_held_out(tree, heldout_fraction, sample_seed))
        seed = funnel.drop(seed, held_out, "held_out_for_evaluation", step="pairs")
    seed = seed.assign(_order=seed["prompt_message_id"].map(lambda v: stable_order_key(v, sample_seed)))
    seed = seed.sort_values("_order", kind="stable").drop(columns="_order")
    if max_pairs is not None:
        capped = pd.Series(False, index=seed.index)
        capped.iloc[max_pairs:] = True
        seed = funnel.drop(seed, capped, "over_max_pairs", step="pairs")
    return seed.reset_index(drop=True)[SEED_COLUMNS], funnel.to_frame()


def flatten_trees(trees: pd.DataFrame) -> pd.DataFrame:
    """Messages, flat as in the Hub's oasst1 records, from the export's nested trees format
    (``{message_tree_id, tree_state, prompt: {..., replies: [...]}}``, one tree a row)."""
    require_columns(trees, ["message_tree_id", "prompt"], "oasst trees")
    rows: list[dict] = []

    def walk(message: dict, parent_id: str | None, tree_id: str) -> None:
        replies = message.get("replies") or []
        rows.append(
            {**{k: v for k, v in message.items() if k != "replies"}, "parent_id": parent_id, "message_tree_id": tree_id}
        )
        for reply in replies:
            walk(reply, message.get("message_id"), tree_id)

    for tree in trees.to_dict("records"):
        if isinstance(tree["prompt"], dict):
            walk(tree["prompt"], None, str(tree["message_tree_id"]))
    return pd.DataFrame.from_records(rows)


RANKED_COLUMNS = ["prompt_id", "instruction", "chosen", "rejected", "chosen_rank", "rejected_rank", "replies", "source"]


def ranked_reply_pairs(messages: pd.DataFrame, languages: list[str], drop_synthetic: bool, source: str) -> pd.DataFrame:
    """Root prompts with two or more ranked replies: the best-ranked (``chosen``) and the worst-ranked
    (``rejected``) reply, both human-written and on-topic, so a model's preference between them
    measures answer quality alone. Untrusted messages are left out as for the seed data."""
    require_columns(messages, REQUIRED_COLUMNS, f"{source} messages")
    usable = messages["text"].map(lambda text: _is_valid_text(text, 10**9)[0]).astype(bool)
    for _, untrusted in untrusted_messages(messages, languages, drop_synthetic):
        usable &= ~untrusted
    frame = messages.loc[usable]
    roots = frame.loc[frame["parent_id"].isna() & (frame["role"] == "prompter")].set_index("message_id")["text"]
    replies = frame.loc[frame["parent_id"].isin(roots.index) & (frame["role"] == "assistant")]
    replies = replies.assign(rank=pd.to_numeric(replies["rank"], errors="coerce")).dropna(subset=["rank"])
    rows = []
    for prompt_id, group in replies.groupby("parent_id", sort=True):
        if len(group) < 2 or group["rank"].nunique() < 2:
            continue
        ordered = group.sort_values("rank", kind="stable")
        best, worst = ordered.iloc[0], ordered.iloc[-1]
        rows.append(
            {
                "prompt_id": str(prompt_id),
                "instruction": roots[prompt_id].strip(),
                "chosen": best["text"].strip(),
                "rejected": worst["text"].strip(),
                "chosen_rank": int(best["rank"]),
                "rejected_rank": int(worst["rank"]),
                "replies": len(group),
                "source": source,
            }
        )
    return pd.DataFrame(rows, columns=RANKED_COLUMNS)
