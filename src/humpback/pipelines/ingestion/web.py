"""Candidate responses from c4 ``en``: clean, filter and deduplicate web documents.

Follows the paper's segment filters: 600–3,000 characters, deduplication, no segments dominated by
repeated sentences or by navigation/boilerplate lines. Every rule is counted in the funnel.
"""

from __future__ import annotations

import hashlib
import re
import zlib

import numpy as np
import pandas as pd

from humpback.funnel import Funnel
from humpback.records import require_columns
from humpback.text import english_stopword_ratio, normalise_whitespace, repeated_sentence_fraction

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


def _shingle_hashes(text: str, shingle_words: int) -> np.ndarray:
    words = text.lower().split()
    if len(words) < shingle_words:
        shingles = [" ".join(words)]
    else:
        shingles = [" ".join(words[i : i + shingle_words]) for i in range(len(words) - shingle_words + 1)]
    return np.unique(np.fromiter((zlib.crc32(s.encode()) for s in shingles), dtype=np.uint64))


_MERSENNE_PRIME = np.uint64((1 << 61) - 1)


def minhash_signatures(texts: list[str], num_perm: int, shingle_words: int, seed: int = 0) -> np.ndarray:
    """MinHash signatures (len(texts) × num_perm) over word shingles, deterministic for a seed."""
    rng = np.random.default_rng(seed)
    # a < 2**31 and x < 2**32 keep a*x + b below 2**64, so uint64 arithmetic does not wrap.
    a = rng.integers(1, 1 << 31, size=num_perm, dtype=np.uint64)
    b = rng.integers(0, 1 << 31, size=num_perm, dtype=np.uint64)
    signatures = np.empty((len(texts), num_perm), dtype=np.uint64)
    for row, text in enumerate(texts):
        hashes = _shingle_hashes(text, shingle_words)
        signatures[row] = ((np.outer(hashes, a) + b) % _MERSENNE_PRIME).min(axis=0)
    return signatures


def near_duplicate_mask(
    texts: list[str], threshold: float, num_perm: int, bands: int, shingle_words: int
) -> np.ndarray:
    """True for every document whose estimated Jaccard similarity to an earlier kept one ≥ threshold.

    Locality-sensitive hashing over bands of the signature proposes candidate pairs; the full
    signature agreement confirms them, so the first document of each cluster is the one kept.
    """
    if num_perm % bands:
        raise ValueError(f"num_perm ({num_perm}) must be a multiple of bands ({bands})")
    signatures = minhash_signatures(texts, num_perm, shingle_words)
    rows = num_perm // bands
    duplicate = np.zeros(len(texts), dtype=bool)
    buckets: dict[tuple[int, bytes], list[int]] = {}
    for index in range(len(texts)):
        candidates: set[int] = set()
        keys = [(band, signatures[index, band * rows : (band + 1) * rows].tobytes()) for band in range(bands)]
        for key in keys:
            candidates.update(buckets.get(key, ()))
        if any(np.mean(signatures[index] == signatures[other]) >= threshold for other in candidates):
            duplicate[index] = True
            continue  # only kept documents represent their cluster
        for key in keys:
            buckets.setdefault(key, []).append(index)
    return duplicate


def document_id(url: str, text: str) -> str:
    return hashlib.sha256(f"{url}\n{text}".encode()).hexdigest()[:16]


def clean_web_documents(
    documents: pd.DataFrame,
    max_raw_chars: int,
    min_chars: int,
    max_chars: int,
    min_english_stopword_ratio: float,
    max_repeated_sentence_fraction: float,
    max_boilerplate_line_fraction: float,
    boilerplate_keywords: list[str],
    near_duplicates: dict,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Clean c4 documents into candidate responses; return them and the funnel."""
    require_columns(documents, ["text"], "c4 documents")
    funnel = Funnel(WEB_SOURCE)
    frame = funnel.start(documents, step="documents")
    if "url" not in frame.columns:
        frame = frame.assign(url=None)
    if "timestamp" not in frame.columns:
        frame = frame.assign(timestamp=None)

    usable = frame["text"].map(lambda t: isinstance(t, str) and bool(t.strip())).astype(bool)
    frame = funnel.drop(frame, ~usable, "missing_or_empty_text", step="documents")
    frame = funnel.drop(frame, frame["text"].str.len() > max_raw_chars, "oversized_raw_text", step="documents")
    frame = frame.assign(text=frame["text"].map(normalise_whitespace))
    lengths = frame["text"].str.len()
    frame = funnel.drop(frame, lengths < min_chars, "shorter_than_min_chars", step="documents")
    frame = funnel.drop(frame, frame["text"].str.len() > max_chars, "longer_than_max_chars", step="documents")
    frame = funnel.drop(
        frame,
        frame["text"].map(english_stopword_ratio) < min_english_stopword_ratio,
        "not_english_prose",
        step="documents",
    )
    frame = funnel.drop(
        frame,
        frame["text"].map(repeated_sentence_fraction) > max_repeated_sentence_fraction,
        "repeated_sentences",
        step="documents",
    )
    frame = funnel.drop(
        frame,
        frame["text"].map(lambda t: boilerplate_line_fraction(t, boilerplate_keywords)) > max_boilerplate_line_fraction,
        "boilerplate_lines",
        step="documents",
    )
    exact_key = frame["text"].map(lambda t: " ".join(t.lower().split()))
    frame = funnel.drop(frame, exact_key.duplicated(keep="first"), "exact_duplicate", step="documents")
    if near_duplicates.get("enabled", True) and len(frame):
        mask = near_duplicate_mask(
            frame["text"].tolist(),
            threshold=near_duplicates["threshold"],
            num_perm=near_duplicates["num_perm"],
            bands=near_duplicates["bands"],
            shingle_words=near_duplicates["shingle_words"],
        )
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
