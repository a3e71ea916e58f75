"""Published web-text quality rules, written from their definitions (no library implementing them
runs offline here: datatrove downloads the bad-words list and needs spaCy for its word tokenizer).

- C4 "bad words" (Raffel et al. 2020, section 2.2): drop any page containing a word or phrase of
  the English "List of Dirty, Naughty, Obscene, and Otherwise Bad Words" (shipped in
  ``humpback/pipelines/ingestion``, CC BY 4.0).
- Gopher quality and repetition rules (Rae et al. 2021, appendix A.1.1 and table A1).

Each rule returns the name of the first sub-rule a text fails (or None), so the funnel counts
every sub-rule on its own row.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from importlib.resources import files

from humpback.params import GopherQualityParams, GopherRepetitionParams

_WORD = re.compile(r"\w+")
_BULLETS = ("•", "‣", "⁃", "◦", "∙", "●", "○", "▪", "-", "*")
_ELLIPSES = ("...", "…")
#: the Gopher stop-word rule's eight words (a text must contain at least two of them)
GOPHER_STOP_WORDS = frozenset(["the", "be", "to", "of", "and", "that", "have", "with"])


@cache
def _bad_words_pattern() -> re.Pattern:
    lines = files("humpback.pipelines.ingestion").joinpath("ldnoobw_en.txt").read_text(encoding="utf-8").splitlines()
    words = sorted((line.strip().lower() for line in lines if line.strip() and not line.startswith("#")), key=len)
    # whole words or phrases only: "ass" must not match "class"
    return re.compile(r"(?<!\w)(?:" + "|".join(re.escape(word) for word in reversed(words)) + r")(?!\w)")


def has_bad_words(text: str) -> bool:
    """C4's rule: the page contains an entry of the bad-words list (case-insensitive, whole words)."""
    return _bad_words_pattern().search(text.lower()) is not None


def gopher_quality_failure(text: str, params: GopherQualityParams) -> str | None:
    """The first Gopher quality rule the text fails, or None."""
    words = text.split()
    count = len(words)
    if not params.min_words <= count <= params.max_words:
        return "gopher_word_count"
    mean_length = sum(len(word) for word in words) / count
    if not params.min_mean_word_length <= mean_length <= params.max_mean_word_length:
        return "gopher_mean_word_length"
    if max(text.count("#"), sum(text.count(e) for e in _ELLIPSES)) / count > params.max_symbol_word_ratio:
        return "gopher_symbol_word_ratio"
    lines = [line for line in text.split("\n") if line.strip()]
    if sum(line.lstrip().startswith(_BULLETS) for line in lines) / len(lines) > params.max_bullet_lines_ratio:
        return "gopher_bullet_lines"
    if sum(line.rstrip().endswith(_ELLIPSES) for line in lines) / len(lines) > params.max_ellipsis_lines_ratio:
        return "gopher_ellipsis_lines"
    if sum(any(c.isalpha() for c in word) for word in words) / count < params.min_alpha_words_ratio:
        return "gopher_alphabetic_words"
    if len(GOPHER_STOP_WORDS & set(_WORD.findall(text.lower()))) < params.min_stop_words:
        return "gopher_stop_words"
    return None


def _duplicate_share(parts: list[str]) -> tuple[float, float]:
    """Share of parts that repeat an earlier part, and share of characters in them."""
    seen: set[str] = set()
    duplicates = duplicate_chars = 0
    for part in parts:
        if part in seen:
            duplicates += 1
            duplicate_chars += len(part)
        seen.add(part)
    total_chars = sum(map(len, parts))
    return (duplicates / len(parts), duplicate_chars / total_chars) if parts and total_chars else (0.0, 0.0)


def _top_ngram_char_share(words: list[str], n: int) -> float:
    """Characters of the most frequent word n-gram (times its count) over the text's word characters."""
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    return count * sum(map(len, gram)) / sum(map(len, words))


def _duplicate_ngram_char_share(words: list[str], n: int) -> float:
    """Characters of the words covered by word n-grams that occur more than once (each word counted once)."""
    starts: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(words) - n + 1):
        starts.setdefault(tuple(words[i : i + n]), []).append(i)
    covered = [False] * len(words)
    for positions in starts.values():
        if len(positions) > 1:
            for start in positions:
                covered[start : start + n] = [True] * n
    total = sum(map(len, words))
    return sum(len(w) for w, c in zip(words, covered) if c) / total if total else 0.0


def gopher_repetition_failure(text: str, params: GopherRepetitionParams) -> str | None:
    """The first Gopher repetition rule the text fails, or None."""
    lines = [line.strip() for line in text.split("\n") if line.strip()]
    line_share, line_chars = _duplicate_share(lines)
    if line_share > params.max_duplicate_line_fraction:
        return "gopher_duplicate_lines"
    if line_chars > params.max_duplicate_line_char_fraction:
        return "gopher_duplicate_line_chars"
    paragraphs = [p.strip() for p in re.split(r"\n{2,}", text) if p.strip()]
    paragraph_share, paragraph_chars = _duplicate_share(paragraphs)
    if paragraph_share > params.max_duplicate_paragraph_fraction:
        return "gopher_duplicate_paragraphs"
    if paragraph_chars > params.max_duplicate_paragraph_char_fraction:
        return "gopher_duplicate_paragraph_chars"
    words = _WORD.findall(text.lower())
    for n, limit in sorted(params.max_top_ngram_char_fraction.items()):
        if _top_ngram_char_share(words, n) > limit:
            return f"gopher_top_{n}gram"
    for n, limit in sorted(params.max_duplicate_ngram_char_fraction.items()):
        if _duplicate_ngram_char_share(words, n) > limit:
            return f"gopher_duplicate_{n}grams"
    return None


#: the quality sub-rules in the order they are checked (the funnel's rows)
GOPHER_QUALITY_RULES = (
    "gopher_word_count",
    "gopher_mean_word_length",
    "gopher_symbol_word_ratio",
    "gopher_bullet_lines",
    "gopher_ellipsis_lines",
    "gopher_alphabetic_words",
    "gopher_stop_words",
)


def gopher_repetition_rules(params: GopherRepetitionParams) -> list[str]:
    """The repetition sub-rules in the order they are checked (the funnel's rows)."""
    return [
        "gopher_duplicate_lines",
        "gopher_duplicate_line_chars",
        "gopher_duplicate_paragraphs",
        "gopher_duplicate_paragraph_chars",
        *(f"gopher_top_{n}gram" for n in sorted(params.max_top_ngram_char_fraction)),
        *(f"gopher_duplicate_{n}grams" for n in sorted(params.max_duplicate_ngram_char_fraction)),
    ]
