"""Text measures shared by the stages: web cleaning filters documents with them, rewriting
rejects degenerate rewrites with them, evaluation describes answers with them."""

from __future__ import annotations

import re

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")
_HORIZONTAL_SPACE = re.compile(r"[^\S\n]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")


def normalise_whitespace(text: str) -> str:
    """Collapse runs of spaces and tabs, strip every line, keep at most one blank line."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\u00a0", " ")
    lines = [_HORIZONTAL_SPACE.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def repeated_sentence_fraction(text: str) -> float:
    """Share of characters in sentences that already appeared earlier in the document."""
    seen: set[str] = set()
    repeated = total = 0
    for sentence in _SENTENCE_SPLIT.split(text):
        key = " ".join(sentence.lower().split())
        if not key:
            continue
        total += len(key)
        if key in seen:
            repeated += len(key)
        seen.add(key)
    return repeated / total if total else 0.0


def repeated_ngram_share(text: str, size: int = 4) -> float:
    """Share of a text's word ``size``-grams that occurred earlier in it: 0 for varied text, near 1
    for a model stuck in a loop ("and and and …")."""
    words = text.lower().split()
    grams = [tuple(words[i : i + size]) for i in range(len(words) - size + 1)]
    if not grams:
        return 0.0
    return 1 - len(set(grams)) / len(grams)
