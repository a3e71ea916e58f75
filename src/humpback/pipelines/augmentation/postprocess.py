"""Clean what the backward model wrote into one instruction, or say why it cannot be used.

Backward models wrap their answer ("You can ask: ..."), add labels and quotes, append an answer,
or copy the document back. Each cleaning step is a plain function; :func:`clean_instruction`
returns the instruction and a status, and the raw output is kept beside it in the dataset.
"""

from __future__ import annotations

import re

from humpback.engine.runner import OK, PROMPT_TOO_LONG

EMPTY, TOO_SHORT, TOO_LONG, ECHO = "empty", "too_short", "too_long", "echo"
#: instructions screened out after cleaning (kept in the dataset, with their text, but not curated)
OTHER_LANGUAGE, DUPLICATE, NEAR_DUPLICATE = "other_language", "duplicate_instruction", "near_duplicate_instruction"

_WRAPPER = re.compile(
    r"^(?:(?:sure|okay|ok)[,!.]?\s+)?"
    r"(?:you (?:can|could|might|may) ask(?: me)?|(?:a|one) (?:possible|good|likely) (?:question|request|instruction)"
    r"(?: (?:is|would be|could be))?|here(?:'s| is) (?:a|the|one) (?:possible )?(?:question|request|instruction)"
    r"(?: that [^:]*)?|the (?:user's )?(?:question|request|instruction) (?:is|was|would be|could be)"
    r"|(?:a )?user (?:might|could|may) (?:ask|say))\s*[:,-]?\s*",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"^\W{0,3}(?:instruction|question|request|prompt|query|task|user)\s*\**\s*[:\-]\s*\**\s*", re.IGNORECASE
)
_TRAILING_ANSWER = re.compile(r"\n\s*\W{0,3}(?:answer|response|assistant|output)\s*\**\s*:", re.IGNORECASE)
_WORDS = re.compile(r"\w+")
#: openings of a request: question words, polite requests, and imperative verbs users start with
_REQUEST_OPENING = re.compile(
    r"^(?:how|what|why|when|where|which|who|whom|whose|is|are|am|was|were|do|does|did|can|could|would|will|should|"
    r"shall|may|might|have|has|please|i (?:want|need|would like|'d like|am looking|'m looking)|i'm (?:looking|trying)|"
    r"help|tell|give|write|explain|describe|list|name|suggest|recommend|summari[sz]e|compare|create|make|find|show|"
    r"provide|generate|compose|draft|outline|plan|design|translate|rewrite|define|identify|calculate|share|teach|"
    r"let's|imagine|pretend|act as|in what|for what|on what|to what|from what|"
    r"any(?:one)? (?:tips|ideas|suggestions|recommendations|advice))\b",
    re.IGNORECASE,
)
_QUOTES = "\"'“”‘’`«»"
_SENTENCE_END = re.compile(r"(?<=[.?!])\s+")
#: fewer words than this make no request ("What?", "Tell me.")
MIN_REQUEST_WORDS = 3


def strip_wrappers(text: str) -> str:
    """Remove answer sections, wrapper phrases, labels and enclosing quotes, in that order."""
    text = _TRAILING_ANSWER.split(text, maxsplit=1)[0].strip()
    for _ in range(2):  # "Sure! You can ask: Question: ..." needs two passes
        text = _LABEL.sub("", _WRAPPER.sub("", text)).strip()
    if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES:
        text = text[1:-1].strip()
    return text.strip(_QUOTES + " ").strip()


def looks_like_request(instruction: object) -> bool:
    """Whether an instruction reads as a user's request: it opens like one (a question word, an
    auxiliary, "please", "I need", or an imperative verb such as "write", "explain"), has at least
    three words, and does not repeat one sentence.

    A "?" alone does not count: a bare name with a question mark ("Jessica Heilman?") is no request.
    A backward model that has not learnt its task writes continuations of the document ("Yes,
    please.", a summary); this is the count that shows it, without a model.
    """
    if not isinstance(instruction, str) or not instruction.strip():
        return False
    text = instruction.strip().lstrip(_QUOTES + "*-#> ")
    sentences = [" ".join(s.lower().split()) for s in _SENTENCE_END.split(text) if s.strip()]
    repeated = len(sentences) > 1 and len(set(sentences)) < len(sentences)
    return len(_WORDS.findall(text)) >= MIN_REQUEST_WORDS and not repeated and bool(_REQUEST_OPENING.match(text))


def copied_fraction(instruction: str, document: str, n: int = 4) -> float:
    """Share of the instruction's word n-grams that occur in the document."""
    words = _WORDS.findall(instruction.lower())
    if len(words) < n:
        return 0.0  # too short to tell; length rules judge such outputs
    doc_words = _WORDS.findall(document.lower())
    doc_grams = {tuple(doc_words[i : i + n]) for i in range(len(doc_words) - n + 1)}
    grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
    return sum(g in doc_grams for g in grams) / len(grams)


def clean_instruction(
    raw: object, document: str, min_chars: int, max_chars: int, max_copied_fraction: float
) -> tuple[str | None, str]:
    """Return (instruction, status); the instruction is None unless the status is ``ok``."""
    if not isinstance(raw, str):  # no output: the prompt did not fit the context (None / NaN)
        return None, PROMPT_TOO_LONG
    text = " ".join(strip_wrappers(raw).split())
    if not text:
        return None, EMPTY
    if len(text) < min_chars:
        return None, TOO_SHORT
    if len(text) > max_chars:
        return None, TOO_LONG
    if copied_fraction(text, document) > max_copied_fraction:
        return None, ECHO
    return text, OK
