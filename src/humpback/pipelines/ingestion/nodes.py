"""Ingestion nodes: raw oasst1 messages and c4 documents → seed pairs, web documents, funnels."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from humpback.data.instruction_formats import select_instruction_pairs
from humpback.data.oasst import (
    RANKED_COLUMNS,
    REQUIRED_COLUMNS,
    flatten_trees,
    normalise_for_dedup,
    ranked_reply_pairs,
    select_seed_pairs,
)
from humpback.data.parts import PART_COLUMN, REPORT, SELECTION, in_part, tree_parts
from humpback.data.records import RawDataError, stable_order_key, to_frame
from humpback.params import HeldoutParams, PromptPartsParams, RankedParams, SeedParams, WebParams
from humpback.pipelines.ingestion.web import clean_web_documents

logger = logging.getLogger(__name__)


def build_seed_pairs(raw_messages: Any, seed: SeedParams) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """First-turn (prompt, rank-0 reply) pairs from oasst1 messages, or from the user's own data in
    the format ``seed.format`` names, the seed funnel, and the reserve.

    Args:
        raw_messages: the seed records (DataFrame, ``datasets`` object or stream).
        seed: ``ingestion.seed`` parameters.
    Returns:
        Seed pairs (instruction, response, source, provenance ids), the funnel table, and the
        ``seed.reserve_pairs`` pairs that come after the cap in the same order: never trained on,
        the trainings measure their held-out loss on them, so the seed set trains whole.
    """
    messages = to_frame(raw_messages, split=seed.split)
    cap = seed.max_pairs + seed.reserve_pairs if seed.max_pairs is not None else None
    pairs, funnel = _first_turn_pairs(messages, seed, cap, seed.sample_seed, seed.heldout_fraction)
    if not seed.reserve_pairs:
        return pairs, funnel, pairs.iloc[:0]
    reserve = pairs.iloc[seed.max_pairs :].reset_index(drop=True)
    kept = pairs.iloc[: seed.max_pairs].reset_index(drop=True)
    row = {"source": funnel["source"].iloc[-1], "step": "pairs", "rule": "reserved_for_heldout_loss"}
    funnel = pd.concat([funnel, pd.DataFrame([row | {"dropped": len(reserve), "remaining": len(kept)}])])
    return kept, funnel.reset_index(drop=True), reserve


def _first_turn_pairs(
    messages: pd.DataFrame, seed: SeedParams, max_pairs: int | None, sample_seed: int, heldout_fraction: float
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The seed data's rules (oasst1: language, rank, trust) applied to ``messages``: pairs and funnel."""
    if seed.format != "oasst1":
        return select_instruction_pairs(
            messages,
            seed.format,
            seed.columns,
            max_text_chars=seed.max_text_chars,
            max_pairs=max_pairs,
            sample_seed=sample_seed,
            heldout_fraction=heldout_fraction,
            languages=seed.languages,
        )
    return select_seed_pairs(
        messages,
        languages=seed.languages,
        rank=seed.rank,
        max_text_chars=seed.max_text_chars,
        drop_synthetic=seed.drop_synthetic,
        max_pairs=max_pairs,
        sample_seed=sample_seed,
        heldout_fraction=heldout_fraction,
    )


#: the held-out pairs' columns
HELDOUT_COLUMNS = ["prompt_id", "instruction", "reference", PART_COLUMN]


def build_heldout_pairs(
    raw_messages: Any,
    seed_pairs: pd.DataFrame,
    seed_reserve_pairs: pd.DataFrame,
    seed: SeedParams,
    heldout: HeldoutParams,
    parts: PromptPartsParams,
) -> pd.DataFrame:
    """First-turn prompts and their rank-0 reference answers that no model was trained on: the
    controls' pairs (``selection`` part), the evaluation's prompts (``report`` part, other trees) and
    what training is decontaminated against (both).

    The same rules as the seed data select the pairs; every conversation tree that gave a seed pair,
    or a reserve pair (the trainings' held-out loss), is excluded, so the evaluation split may be the
    seed's own sample with a held-out slice (offline) or another split (validation). A reserve pair
    among the evaluation prompts would be decontaminated out of the trainings' held-out set.
    """
    messages = to_frame(raw_messages, split=heldout.split)
    pairs, _ = _first_turn_pairs(messages, seed, None, heldout.sample_seed, heldout_fraction=0.0)
    training_side = pd.concat([seed_pairs["message_tree_id"], seed_reserve_pairs["message_tree_id"]])
    trained_on = pairs["message_tree_id"].isin(set(training_side))
    kept = pairs.loc[~trained_on]
    kept = kept.assign(**{PART_COLUMN: tree_parts(kept["message_tree_id"], parts.report_share, parts.seed)})
    if heldout.max_prompts is not None:
        kept = kept.groupby(PART_COLUMN, sort=False).head(heldout.max_prompts)
    logger.info(
        "held-out prompts: %d of %d first-turn pairs (%d excluded: their tree is in the seed or reserve data); "
        "by part: %s",
        len(kept),
        len(pairs),
        int(trained_on.sum()),
        kept[PART_COLUMN].value_counts().to_dict(),
    )
    if kept.empty:
        raise ValueError(
            "no held-out prompts: every first-turn pair of the evaluation messages is in the seed data. "
            "Evaluate on another split, or set ingestion.seed.heldout_fraction > 0 to keep a slice out."
        )
    return kept.rename(columns={"prompt_message_id": "prompt_id", "response": "reference"})[
        HELDOUT_COLUMNS
    ].reset_index(drop=True)


def build_ranked_pairs(
    raw_messages: Any,
    extra_trees: Any,
    seed_pairs: pd.DataFrame,
    seed_reserve_pairs: pd.DataFrame,
    seed: SeedParams,
    ranked: RankedParams,
    parts: PromptPartsParams,
) -> pd.DataFrame:
    """Prompts with a best- and a worst-ranked human reply that no model trains on: the held-out
    oasst1 messages' trees, and the supplementary export's trees (``oasst1_extra_trees``, none in
    base). Prompts of the seed or reserve data, or whose text is one of their instructions, are left
    out; a prompt in both sources is kept once. Each prompt is a tree's root (its id is the tree's),
    and goes to the part its tree went to in the held-out pairs."""
    seed_pairs = pd.concat([seed_pairs, seed_reserve_pairs], ignore_index=True)
    sources = []
    messages = to_frame(raw_messages, split=ranked.split)
    if all(column in messages.columns for column in REQUIRED_COLUMNS):
        sources.append(ranked_reply_pairs(messages, seed.languages, seed.drop_synthetic, "oasst1"))
    else:
        logger.info("ranked pairs: the held-out messages are not oasst1 trees; none taken from them")
    trees = to_frame(extra_trees)
    if len(trees):
        sources.append(ranked_reply_pairs(flatten_trees(trees), seed.languages, seed.drop_synthetic, "oasst_export"))
    pairs = pd.concat(sources, ignore_index=True) if sources else pd.DataFrame(columns=RANKED_COLUMNS)
    key = pairs["instruction"].map(normalise_for_dedup)
    trained = pairs["prompt_id"].isin(set(seed_pairs["prompt_message_id"])) | key.isin(
        set(seed_pairs["instruction"].map(normalise_for_dedup))
    )
    repeated = key.duplicated(keep="first") & ~trained
    kept = pairs.loc[~trained & ~repeated]
    kept = kept.assign(_order=kept["prompt_id"].map(lambda v: stable_order_key(v, ranked.sample_seed)))
    kept = kept.sort_values("_order", kind="stable").drop(columns="_order")
    kept = kept.assign(**{PART_COLUMN: tree_parts(kept["prompt_id"], parts.report_share, parts.seed)})
    kept = kept.groupby(PART_COLUMN, sort=False).head(ranked.max_prompts or len(kept))
    logger.info(
        "ranked pairs: %d prompts kept of %d (%d in the seed data, %d in both sources); by source: %s; by part: %s",
        len(kept),
        len(pairs),
        int(trained.sum()),
        int(repeated.sum()),
        kept["source"].value_counts().to_dict(),
        kept[PART_COLUMN].value_counts().to_dict(),
    )
    return kept.reset_index(drop=True)[[*RANKED_COLUMNS, PART_COLUMN]]


def split_prompt_parts(
    heldout_pairs: pd.DataFrame, ranked_pairs: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """The held-out and the ranked prompts of each part, as their own datasets: the controls read
    the ``selection`` part, the evaluation the ``report`` part (disjoint by tree), so a figure is never
    reported on the prompts that chose the settings behind it."""
    selection, report = in_part(heldout_pairs, SELECTION), in_part(heldout_pairs, REPORT)
    for name, frame in (("selection", selection), ("report", report)):
        if len(frame) < 2:
            raise ValueError(
                f"the {name} part has {len(frame)} held-out prompt(s); the controls and the evaluation need at "
                "least two each: hold more trees out (ingestion.seed.heldout_fraction) or change "
                "ingestion.parts.report_share"
            )
    return selection, report, in_part(ranked_pairs, SELECTION), in_part(ranked_pairs, REPORT)


def build_web_documents(raw_documents: Any, web: WebParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cleaned, filtered, deduplicated c4 documents (the candidate responses), and their funnel.

    Args:
        raw_documents: c4 ``en`` records (text, url, timestamp), possibly a stream.
        web: ``ingestion.web`` parameters; ``max_documents`` takes the first N records.
    """
    documents = to_frame(raw_documents, limit=web.max_documents, split=web.split)
    if web.text_column != "text":
        if web.text_column not in documents.columns:
            raise RawDataError(
                f"corpus: no column {web.text_column!r} (ingestion.web.text_column); found {list(documents.columns)}"
            )
        documents = documents.drop(columns=["text"], errors="ignore").rename(columns={web.text_column: "text"})
    return clean_web_documents(documents, web)


def combine_funnels(seed_funnel: pd.DataFrame, web_funnel: pd.DataFrame) -> pd.DataFrame:
    """One reporting table for both sources, so `kedro viz` previews the whole funnel at once."""
    return pd.concat([seed_funnel, web_funnel], ignore_index=True)
