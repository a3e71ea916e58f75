"""Exact and near-duplicate detection, shared by the web documents and the generated instructions.

Contamination: word n-gram overlap between a training instruction and any evaluation prompt.

Near duplicates: datasketch's MinHash signatures of word shingles, indexed by its MinHashLSH
(banded locality-sensitive hashing). LSH only proposes candidates; a candidate counts when its
estimated Jaccard similarity to a kept text reaches the threshold, so the first text of each
cluster is the one kept.
"""

from __future__ import annotations

import re

import numpy as np

from humpback.params import NearDuplicateParams

_WORD = re.compile(r"\w+")


def exact_key(text: str) -> str:
    """A text as its words, lower-cased: case, punctuation and spacing do not make it new."""
    return " ".join(_WORD.findall(text.lower())) or text.strip().lower()


def shingles(text: str, size: int) -> set[str]:
    """The text's word ``size``-grams as strings (a text without words is its own shingle)."""
    return {" ".join(gram) for gram in ngrams(text, size)} or {text.strip().lower()}


def near_duplicate_mask(texts: list[str], params: NearDuplicateParams, seed: int = 1) -> np.ndarray:
    """True for every text whose estimated Jaccard similarity to an earlier kept one ≥ threshold."""
    from datasketch import MinHash, MinHashLSH

    index = MinHashLSH(num_perm=params.num_perm, params=(params.bands, params.num_perm // params.bands))
    kept: dict[int, MinHash] = {}
    duplicate = np.zeros(len(texts), dtype=bool)
    for position, text in enumerate(texts):
        signature = MinHash(num_perm=params.num_perm, seed=seed)
        signature.update_batch([shingle.encode() for shingle in sorted(shingles(text, params.shingle_words))])
        if any(signature.jaccard(kept[other]) >= params.threshold for other in index.query(signature)):
            duplicate[position] = True
            continue  # only kept texts represent their cluster
        index.insert(position, signature)
        kept[position] = signature
    return duplicate


def ngrams(text: str, size: int) -> set[tuple[str, ...]]:
    """Word ``size``-grams of a text (one n-gram of all its words when it is shorter)."""
    words = tuple(_WORD.findall(text.lower()))
    if len(words) <= size:
        return {words} if words else set()
    return {words[i : i + size] for i in range(len(words) - size + 1)}


def contamination_overlap(
    texts: list[str], references: list[str], size: int, min_contained_words: int | None = None
) -> np.ndarray:
    """For each text, its largest n-gram overlap with any reference: shared n-grams over the
    n-grams of the shorter of the two (1.0: one contains the other). A reference shorter than
    ``size`` words (one n-gram of all its words) never matches an n-gram of a longer text: it
    counts as contained (1.0) when its words occur in the text as a phrase, if it has at least
    ``min_contained_words`` words (shorter ones, "Hi there", are everywhere)."""
    index: dict[tuple[str, ...], set[int]] = {}
    reference_sizes = []
    short: list[str] = []
    for position, reference in enumerate(references):
        grams = ngrams(reference, size)
        reference_sizes.append(len(grams))
        for gram in grams:
            index.setdefault(gram, set()).add(position)
        words = _WORD.findall(reference.lower())
        if min_contained_words is not None and min_contained_words <= len(words) < size:
            short.append(" " + " ".join(words) + " ")
    overlaps = np.zeros(len(texts))
    for row, text in enumerate(texts):
        grams = ngrams(text, size)
        shared: dict[int, int] = {}
        for gram in grams:
            for position in index.get(gram, ()):
                shared[position] = shared.get(position, 0) + 1
        overlaps[row] = max(
            (count / min(len(grams), reference_sizes[position]) for position, count in shared.items()), default=0.0
        )
        if short and overlaps[row] < 1.0:
            phrase = " " + " ".join(_WORD.findall(text.lower())) + " "
            if any(reference in phrase for reference in short):
                overlaps[row] = 1.0
    return overlaps
