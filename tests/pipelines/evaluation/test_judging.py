"""Verdicts in both orders, their combination, and the win-rate arithmetic."""

import math

import numpy as np
import pytest

from humpback.pipelines.evaluation.judging import (
    FIRST,
    SECOND,
    TIE,
    challenger_score,
    outcome,
    verdict,
    wilson_interval,
    win_rate,
)


def test_verdict_is_the_most_probable_option_or_none():
    assert verdict([0.6, 0.3, 0.1]) == FIRST
    assert verdict([0.1, 0.2, 0.05]) == SECOND
    assert verdict([0.1, 0.1, 0.5]) == TIE
    assert verdict([math.nan] * 3) is None


@pytest.mark.parametrize(
    ("shown_first", "shown_second", "score", "result"),
    [
        (FIRST, SECOND, 1.0, "win"),  # preferred in both positions
        (SECOND, FIRST, 0.0, "loss"),
        (FIRST, FIRST, 0.5, "tie"),  # the judge always picks the first answer: position bias, a tie
        (SECOND, SECOND, 0.5, "tie"),
        (FIRST, TIE, 0.75, "win"),
        (TIE, FIRST, 0.25, "loss"),
        (TIE, TIE, 0.5, "tie"),
        (FIRST, None, 1.0, "win"),  # one order only
        (None, None, None, "not_judged"),
    ],
)
def test_orders_are_mapped_back_to_the_challenger(shown_first, shown_second, score, result):
    assert challenger_score(shown_first, shown_second) == score
    assert outcome(score) == result


def test_win_rate_counts_ties_half_and_gives_a_normal_interval():
    scores = [1.0, 1.0, 0.5, 0.0, 0.75, None]
    result = win_rate(scores, z=1.96)
    assert (result["prompts"], result["judged"], result["not_judged"]) == (6, 5, 1)
    assert (result["wins"], result["ties"], result["losses"]) == (3, 1, 1)
    assert result["win_rate"] == pytest.approx(3.25 / 5)
    judged = np.array([1.0, 1.0, 0.5, 0.0, 0.75])
    half_width = 1.96 * judged.std(ddof=1) / math.sqrt(5)  # sd = 0.4183 → ±0.3667
    assert half_width == pytest.approx(0.3667, abs=1e-4)
    assert result["ci_low"] == pytest.approx(0.65 - half_width)
    assert result["ci_high"] == 1.0  # 0.65 + 0.3667 clipped to 1


def test_win_rate_edge_cases():
    assert math.isnan(win_rate([None, None])["win_rate"])
    single = win_rate([1.0])
    assert single["win_rate"] == 1.0 and (single["ci_low"], single["ci_high"]) == (0.0, 1.0)
    even = win_rate([0.5] * 10)
    assert even["win_rate"] == 0.5 and even["ci_low"] == even["ci_high"] == 0.5 and even["ties"] == 10


def test_wilson_interval_by_hand():
    # 8 of 10: centre (0.8 + 1.96²/20) / (1 + 1.96²/10) = 0.7167, half-width 0.2266
    low, high = wilson_interval(8, 10, 1.96)
    assert (low, high) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))
    assert wilson_interval(0, 5)[0] == 0.0 and all(math.isnan(v) for v in wilson_interval(0, 0))
