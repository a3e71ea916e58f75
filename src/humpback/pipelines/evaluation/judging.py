"""Pairwise judgements: verdicts in both orders, their combination, and the win rate.

The judge sees each pair twice, once with the challenger's answer first and once with it second;
a preference that flips with the order is position bias, so it counts as a tie. Ties count half a
win, as in AlpacaEval and MT-Bench. The interval is the normal approximation on the per-prompt
scores (0, 0.25, 0.5, 0.75, 1), which stays honest when ties are common.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FIRST, SECOND, TIE = "first", "second", "tie"
#: judge option order (see ``humpback.prompts.JUDGE_OPTIONS``): "1" first, "2" second, "0" tie
VERDICTS = [FIRST, SECOND, TIE]
WIN, LOSS, NOT_JUDGED = "win", "loss", "not_judged"


def verdict(probabilities: Sequence[float]) -> str | None:
    """The judge's most probable verdict; ``None`` when it could not judge (NaN: prompt too long)."""
    values = np.asarray(probabilities, dtype=float)
    if np.isnan(values).any():
        return None
    return VERDICTS[int(np.argmax(values))]


def given(value: object) -> bool:
    """Whether the judge gave this verdict: one not given (prompt too long, no option among a
    server's top tokens) is None, or NaN once it sits in a frame."""
    return isinstance(value, str)


def challenger_score(challenger_first: str | None, challenger_second: str | None) -> float | None:
    """Score of the challenger on one prompt: 1 win, 0.5 tie, 0 loss, averaged over the orders judged.

    Args:
        challenger_first: the verdict when the challenger's answer was shown first.
        challenger_second: the verdict when it was shown second (``None`` if not asked).
    """
    scores = []
    if given(challenger_first):
        scores.append({FIRST: 1.0, SECOND: 0.0, TIE: 0.5}[challenger_first])
    if given(challenger_second):
        scores.append({FIRST: 0.0, SECOND: 1.0, TIE: 0.5}[challenger_second])
    return sum(scores) / len(scores) if scores else None


def outcome(score: float | None) -> str:
    if score is None:
        return NOT_JUDGED
    return WIN if score > 0.5 else LOSS if score < 0.5 else TIE


def win_rate(scores: Sequence[float | None], z: float = 1.96) -> dict:
    """Wins, ties, losses and the win rate (ties half) with its confidence interval.

    Prompts the judge could not judge are counted, not scored.
    """
    judged = np.array([s for s in scores if s is not None], dtype=float)
    n = len(judged)
    result = {
        "prompts": len(scores),
        "judged": n,
        "not_judged": len(scores) - n,
        "wins": int((judged > 0.5).sum()),
        "ties": int((judged == 0.5).sum()),
        "losses": int((judged < 0.5).sum()),
    }
    if n == 0:
        return result | {"win_rate": math.nan, "ci_low": math.nan, "ci_high": math.nan}
    rate = float(judged.mean())
    half_width = z * float(judged.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return result | {"win_rate": rate, "ci_low": max(0.0, rate - half_width), "ci_high": min(1.0, rate + half_width)}


def wilson_interval(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion (honest near 0 and 1, unlike the normal one)."""
    if trials == 0:
        return math.nan, math.nan
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)
