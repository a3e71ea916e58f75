"""Candidate responses from c4 ``en``: clean, filter and deduplicate web documents.

Follows the paper's segment filters: 600–3,000 characters, deduplication, no segments dominated by
repeated sentences or by navigation/boilerplate lines; language identification, C4's bad-words rule
and, optionally, Gopher's quality and repetition rules. Every rule is counted in the funnel.
"""

from __future__ import annotations

import hashlib
import re

import pandas as pd

from humpback.data.dedup import exact_key, near_duplicate_mask
from humpback.data.funnel import Funnel
from humpback.data.language import other_language
from humpback.data.records import require_columns
from humpback.data.text import normalise_whitespace, repeated_sentence_fraction
from humpback.params import WebParams
from humpback.pipelines.ingestion.quality import (
    GOPHER_QUALITY_RULES,
    gopher_quality_failure,
    gopher_repetition_failure,
    gopher_repetition_rules,
    has_bad_words,
)

WEB_SOURCE = "c4"
WEB_COLUMNS = ["doc_id", "text", "url", "timestamp", "n_chars"]


def boilerplate_line_fraction(text: str, keywords: list[str]) -> float:
    """Share of non-empty lines that look like navigation, ads or headers rather than prose."""
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return 1.0
    pattern = re.compile("|".join(re.escape(k) for k in keywords), re.IGNORECASE) if keywords else None

    def is_boilerplate(line: str) -> bool:
        words = line.split()
        if pattern is not None and pattern.search(line) and len(words) <= 12:
            return True
        letters = [c for c in line if c.isalpha()]
        if letters and line.isupper() and len(letters) >= 4:
            return True  # ALL-CAPS header
        return len(words) <= 3 and not line.rstrip().endswith((".", "!", "?", ":"))

    return sum(map(is_boilerplate, lines)) / len(lines)


def document_id(url: str, text: str) -> str:
    return hashlib.sha256(f"{url}\n{text}".encode()).hexdigest()[:16]


def _drop_by_failure(funnel: Funnel, frame: pd.DataFrame, failures: pd.Series, rules) -> pd.DataFrame:
    """One funnel row per sub-rule, in order: each drops the texts whose first failure it is."""
    for rule in rules:
        frame = funnel.drop(frame, failures.reindex(frame.index) == rule, rule, step="documents")
    return frame


def clean_web_documents(documents: pd.DataFrame, params: WebParams) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean c4 documents into candidate responses; return them and the funnel.

    Order: unusable records, the paper's length bounds, language, the optional published quality
    rules (C4 bad words, Gopher quality, Gopher repetition), repeated sentences, boilerplate, exact
    then near duplicates. Each rule (and each Gopher sub-rule) is one funnel row.
    """
    require_columns(documents, ["text"], "c4 documents")
    funnel = Funnel(WEB_SOURCE)
    frame = funnel.start(documents, step="documents")
    if "url" not in frame.columns:
        frame = frame.assign(url=None)
    if "timestamp" not in frame.columns:
        frame = frame.assign(timestamp=None)

    usable = frame["text"].map(lambda t: isinstance(t, str) and bool(t.strip())).astype(bool)
    frame = funnel.drop(frame, ~usable, "missing_or_empty_text", step="documents")
    frame = funnel.drop(frame, frame["text"].str.len() > params.max_raw_chars, "oversized_raw_text", step="documents")
    frame = frame.assign(text=frame["text"].map(normalise_whitespace))
    frame = funnel.drop(frame, frame["text"].str.len() < params.min_chars, "shorter_than_min_chars", step="documents")
    frame = funnel.drop(frame, frame["text"].str.len() > params.max_chars, "longer_than_max_chars", step="documents")
    frame = funnel.drop(
        frame,
        other_language(frame["text"], params.language),
        f"not_{'_or_'.join(params.language.languages)}",
        step="documents",
    )
    if params.c4_bad_words:
        frame = funnel.drop(frame, frame["text"].map(has_bad_words), "c4_bad_words", step="documents")
    if params.gopher_quality.enabled:
        failures = frame["text"].map(lambda t: gopher_quality_failure(t, params.gopher_quality))
        frame = _drop_by_failure(funnel, frame, failures, GOPHER_QUALITY_RULES)
    if params.gopher_repetition.enabled:
        failures = frame["text"].map(lambda t: gopher_repetition_failure(t, params.gopher_repetition))
        frame = _drop_by_failure(funnel, frame, failures, gopher_repetition_rules(params.gopher_repetition))
    frame = funnel.drop(
        frame,
        frame["text"].map(repeated_sentence_fraction) > params.max_repeated_sentence_fraction,
        "repeated_sentences",
        step="documents",
    )
    frame = funnel.drop(
        frame,
        frame["text"].map(lambda t: boilerplate_line_fraction(t, params.boilerplate_keywords))
        > params.max_boilerplate_line_fraction,
        "boilerplate_lines",
        step="documents",
    )
    frame = funnel.drop(
        frame, frame["text"].map(exact_key).duplicated(keep="first"), "exact_duplicate", step="documents"
    )
    if params.near_duplicates.enabled and len(frame):
        mask = near_duplicate_mask(frame["text"].tolist(), params.near_duplicates)
        frame = funnel.drop(frame, mask, "near_duplicate", step="documents")

    urls = frame["url"].map(lambda u: u if isinstance(u, str) else "")
    result = pd.DataFrame(
        {
            "doc_id": [document_id(u, t) for u, t in zip(urls, frame["text"])],
            "text": frame["text"],
            "url": urls,
            "timestamp": frame["timestamp"].map(lambda v: v if isinstance(v, str) else (None if v is None else str(v))),
            "n_chars": frame["text"].str.len().astype("int64"),
        }
    )
    return result.reset_index(drop=True)[WEB_COLUMNS], funnel.to_frame()
