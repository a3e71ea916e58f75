"""Does an answer read like an assistant's reply or like a web page? Judge-free measures of style.

Curation is meant to change how a model writes: fewer web artefacts (links, bylines, prices, a
shop's "we"), answers that stop, that start on the request. The web-style detector is a multinomial
naive Bayes over word and artefact tokens, learned from the run's own two corpora (assistant replies
against web documents) and validated on held-out texts of both before any answer is scored with it.
It is hand-written: a count table and a log ratio, not worth a machine-learning library in both
dependency sets. Every text is read through the same leading window, so a long web page and a short
reply are compared on equal terms, and a score is a mean over tokens, so length itself says nothing.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

#: artefacts a web page carries and an assistant's reply rarely does, each read as one token
_ARTEFACTS = (
    ("<url>", r"https?://\S+|www\.\S+|\b\S+\.(?:com|org|net|co\.uk|html?)\b\S*"),
    ("<email>", r"\b[\w.+-]+@[\w-]+\.[\w.]+\b"),
    ("<phone>", r"\(?\b\d{3}\)?[-. ]\d{3}[-. ]\d{4}\b"),
    ("<price>", r"[$£€]\s?\d[\d,.]*"),
    ("<year>", r"\b(?:19|20)\d\d\b"),
    ("<number>", r"\d+(?:[.,]\d+)*"),
)
_TOKEN = re.compile(
    "|".join(f"(?P<a{i}>{pattern})" for i, (_, pattern) in enumerate(_ARTEFACTS)) + r"|[a-z]+(?:'[a-z]+)?|[^\sa-z\d]"
)
_LETTERS = re.compile(r"[A-Za-z]+")
_FIRST_SENTENCE = re.compile(r"(?<=[.!?:])\s|\n")
_CONTENT_WORD = re.compile(r"[a-z]{4,}")
#: frequent words that say nothing of what a text is about
_FUNCTION_WORDS = frozenset(
    [
        "about",
        "above",
        "after",
        "again",
        "also",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "could",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "from",
        "further",
        "have",
        "having",
        "here",
        "into",
        "just",
        "more",
        "most",
        "other",
        "over",
        "same",
        "should",
        "some",
        "such",
        "than",
        "that",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "under",
        "until",
        "very",
        "want",
        "what",
        "when",
        "where",
        "which",
        "while",
        "whom",
        "with",
        "would",
        "your",
        "yours",
        "please",
        "tell",
        "give",
        "explain",
        "write",
        "make",
        "know",
        "like",
    ]
)


def _line_shape(line: str) -> list[str]:
    """A line's start and its shape: a web page's headings and menus are Title Case lines, a
    reply's lines start sentences."""
    words = _LETTERS.findall(line)
    if not words:
        return ["<line>"]
    capitals = sum(word[0].isupper() for word in words) / len(words)
    if len(words) > 1 and capitals > 0.6:
        return ["<line>", "<title-case-line>"]
    return ["<line>", "<line-upper>" if words[0][0].isupper() else "<line-lower>"]


def style_tokens(text: str, window_chars: int) -> list[str]:
    """The tokens of a text's first ``window_chars`` characters: each line's shape, lower-cased
    words, punctuation marks and artefacts (a link, an address, a phone number, a price, a year, a
    number: one token each), then every pair of neighbouring tokens (word order carries style:
    "click here", "posted by", "I hope")."""
    tokens = []
    for line in text[:window_chars].split("\n"):
        tokens += _line_shape(line)
        for match in _TOKEN.finditer(line.lower()):
            artefact = match.lastgroup
            tokens.append(_ARTEFACTS[int(artefact[1:])][0] if artefact else match.group())
    return tokens + [f"{first} {second}" for first, second in zip(tokens, tokens[1:])]


@dataclass(frozen=True)
class WebStyleDetector:
    """Per-token log ratios, log P(token | web) − log P(token | assistant); a text's score is their
    mean over its window (above 0: more web-like than assistant-like; a text with no known token: 0)."""

    log_ratios: dict[str, float]
    window_chars: int

    def web_score(self, text: str) -> float:
        ratios = [self.log_ratios[t] for t in style_tokens(text, self.window_chars) if t in self.log_ratios]
        return sum(ratios) / len(ratios) if ratios else 0.0

    def to_dict(self) -> dict:
        return {"window_chars": self.window_chars, "log_ratios": self.log_ratios}

    @classmethod
    def from_dict(cls, saved: dict) -> WebStyleDetector:
        return cls(log_ratios=dict(saved["log_ratios"]), window_chars=int(saved["window_chars"]))


def fit_web_style_detector(
    assistant_texts: Iterable[str], web_texts: Iterable[str], window_chars: int, min_count: int
) -> WebStyleDetector:
    """Naive Bayes with add-one smoothing over the tokens seen at least ``min_count`` times in both
    corpora together (rarer ones are names and typos: they would learn the sample, not the style)."""
    counts = {
        side: Counter(token for text in texts for token in style_tokens(text, window_chars))
        for side, texts in (("assistant", assistant_texts), ("web", web_texts))
    }
    vocabulary = [
        t
        for t in counts["assistant"].keys() | counts["web"].keys()
        if counts["assistant"][t] + counts["web"][t] >= min_count
    ]
    if not vocabulary:
        raise ValueError("the web-style detector found no token in its training texts")
    totals = {side: sum(counts[side][t] for t in vocabulary) + len(vocabulary) for side in counts}
    log_ratios = {
        token: math.log((counts["web"][token] + 1) / totals["web"])
        - math.log((counts["assistant"][token] + 1) / totals["assistant"])
        for token in sorted(vocabulary)
    }
    return WebStyleDetector(log_ratios=log_ratios, window_chars=window_chars)


def _content_words(text: str) -> set[str]:
    """Words of four letters or more, function words left out, cut to their first five letters (a
    crude stem: "cooking" meets "cook", "recipes" meets "recipe")."""
    return {word[:5] for word in _CONTENT_WORD.findall(text.lower()) if word not in _FUNCTION_WORDS}


def first_sentence(text: str) -> str:
    return _FIRST_SENTENCE.split(text.strip(), maxsplit=1)[0]


def opens_on_topic(instruction: str, answer: str) -> bool:
    """Whether the answer's first sentence shares a content word with the request: an assistant
    starts on what was asked, a web page on whatever its own page is about."""
    return bool(_content_words(instruction) & _content_words(first_sentence(answer)))


def answer_style(answers: pd.DataFrame, detector: WebStyleDetector) -> pd.DataFrame:
    """Each answer (``prompt_id``, ``instruction``, ``response``) read for style: its web-style
    score and whether its first sentence opens on the request (1.0 or 0.0)."""
    return pd.DataFrame(
        {
            "prompt_id": answers["prompt_id"].to_numpy(),
            "web_style": answers["response"].map(detector.web_score).to_numpy(float),
            "on_topic_opening": [
                float(opens_on_topic(i, r)) for i, r in zip(answers["instruction"], answers["response"], strict=True)
            ],
        }
    )
