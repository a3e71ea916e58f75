"""Ingestion nodes: raw oasst1 messages and c4 documents → seed pairs, web documents, funnels."""

from __future__ import annotations

from typing import Any

import pandas as pd

from humpback.oasst import select_seed_pairs
from humpback.params import SeedParams, WebParams
from humpback.pipelines.ingestion.web import clean_web_documents
from humpback.records import to_frame


def build_seed_pairs(raw_messages: Any, seed: SeedParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """First-turn (prompt, rank-0 reply) pairs from oasst1 messages, and the seed funnel.

    Args:
        raw_messages: oasst1 in its Hub record format (DataFrame, ``datasets`` object or stream).
        seed: ``ingestion.seed`` parameters.
    Returns:
        Seed pairs (instruction, response, source, provenance ids) and the funnel table.
    """
    messages = to_frame(raw_messages, split=seed.split)
    return select_seed_pairs(
        messages,
        languages=seed.languages,
        rank=seed.rank,
        max_text_chars=seed.max_text_chars,
        drop_synthetic=seed.drop_synthetic,
        max_pairs=seed.max_pairs,
        sample_seed=seed.sample_seed,
        heldout_fraction=seed.heldout_fraction,
    )


def build_web_documents(raw_documents: Any, web: WebParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Cleaned, filtered, deduplicated c4 documents (the candidate responses), and their funnel.

    Args:
        raw_documents: c4 ``en`` records (text, url, timestamp), possibly a stream.
        web: ``ingestion.web`` parameters; ``max_documents`` takes the first N records.
    """
    documents = to_frame(raw_documents, limit=web.max_documents, split=web.split)
    return clean_web_documents(documents, web)


def combine_funnels(seed_funnel: pd.DataFrame, web_funnel: pd.DataFrame) -> pd.DataFrame:
    """One reporting table for both sources, so `kedro viz` previews the whole funnel at once."""
    return pd.concat([seed_funnel, web_funnel], ignore_index=True)
