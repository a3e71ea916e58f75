"""Read a rewritten answer from between its markers, or keep the draft and say why."""

from __future__ import annotations

import re

from humpback.data.text import repeated_sentence_fraction
from humpback.engine.runner import PROMPT_TOO_LONG
from humpback.prompts import REWRITE_CLOSE, REWRITE_OPEN

REWRITTEN, NO_MARKERS, EMPTY, DEGENERATE = "rewritten", "no_markers", "empty", "degenerate"
NOT_REQUESTED = "not_requested"

_BETWEEN = re.compile(re.escape(REWRITE_OPEN) + r"(.*?)" + re.escape(REWRITE_CLOSE), re.DOTALL | re.IGNORECASE)


def parse_rewrite(raw: object, draft: str, min_chars: int) -> tuple[str, str]:
    """Return (response to use, status): the rewrite when it is usable, else the draft."""
    if not isinstance(raw, str):  # no output: the prompt did not fit the context (None / NaN)
        return draft, PROMPT_TOO_LONG
    found = _BETWEEN.findall(raw)
    if not found:
        return draft, NO_MARKERS
    text = found[-1].strip()
    if not text:
        return draft, EMPTY
    if len(text) < min_chars or repeated_sentence_fraction(text) > 0.5:
        return draft, DEGENERATE
    return text, REWRITTEN
