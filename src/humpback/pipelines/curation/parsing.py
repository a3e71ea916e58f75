"""Read a 1–5 score out of free text without ever raising.

Public reproductions lost half their pairs to a strict ``Score: N`` regex, and one framework's
parser crashes when no score is present. This parser accepts the common variants, prefers the
last one (the format asks for the score on the last line), and reports why when it finds none.
"""

from __future__ import annotations

import re

_LABELLED = re.compile(
    r"(?:score|rating|rated|grade)\s*(?:is|of|=|:|-)?\s*\**\s*(?::\s*)?\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*5|out of 5)?",
    re.IGNORECASE,
)
_FRACTION = re.compile(r"\b(\d+(?:\.\d+)?)\s*(?:/\s*5|out of 5)\b", re.IGNORECASE)
_BARE = re.compile(r"^\W*(\d)\W*$")

PARSED, OUT_OF_RANGE, UNPARSED = "parsed", "out_of_range", "unparsed"


def parse_score(text: object, low: int = 1, high: int = 5) -> tuple[int | None, str]:
    """Return (score, status); status is ``parsed``, ``out_of_range`` or ``unparsed``."""
    if not isinstance(text, str) or not text.strip():
        return None, UNPARSED
    for pattern in (_LABELLED, _FRACTION):
        matches = pattern.findall(text)
        if matches:
            return _checked(matches[-1], low, high)
    last_line = text.strip().splitlines()[-1]
    bare = _BARE.match(last_line)
    if bare:
        return _checked(bare.group(1), low, high)
    return None, UNPARSED


def _checked(number: str, low: int, high: int) -> tuple[int | None, str]:
    value = float(number)
    if value != int(value) or not low <= value <= high:
        return None, OUT_OF_RANGE
    return int(value), PARSED
