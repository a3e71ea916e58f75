"""Small statistics shared by the method-health checks: win shares, ROC AUC and paired differences,
with bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

#: a two-sided 5 % test with 80 % power detects a difference of about 2.8 standard errors
DETECTABLE_IN_STANDARD_ERRORS = 1.96 + 0.84


def paired_bootstrap_difference(
    a: np.ndarray, b: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float, float]:
    """Difference of two token-weighted means measured on the same items, with a paired
    percentile bootstrap interval over items.

    ``a`` and ``b`` have one row per item: (sum of the values, number of tokens), e.g. an answer's
    NLL under two models. The difference is sum(a₀)/sum(a₁) − sum(b₀)/sum(b₁).
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if not len(a):
        return math.nan, math.nan, math.nan

    def difference(rows: np.ndarray) -> np.ndarray:
        return a[rows, 0].sum(-1) / a[rows, 1].sum(-1) - b[rows, 0].sum(-1) / b[rows, 1].sum(-1)

    draws = np.random.default_rng(seed).integers(0, len(a), size=(samples, len(a)))
    return float(difference(np.arange(len(a)))), *_percentile_interval(difference(draws), level)


def bootstrap_ratio(
    values: np.ndarray, weights: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float, float]:
    """sum(values) / sum(weights) over items (a share, a mean), with a percentile bootstrap interval
    over items: the draws of :func:`paired_bootstrap_difference` against nothing."""
    values, weights = np.asarray(values, float), np.asarray(weights, float)
    return paired_bootstrap_difference(np.c_[values, weights], np.c_[0 * values, weights], samples, seed, level)


def paired_win_share(
    first: np.ndarray, second: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float, float]:
    """Share of items where ``first`` scores above ``second`` (ties half), the two measured on the
    same item (a prompt with its own answer and with another), with a percentile bootstrap interval
    over items. Unlike a ROC AUC over the pooled scores, an item's difficulty cannot decide it."""
    first, second = np.asarray(first, float), np.asarray(second, float)
    wins = (first > second) + 0.5 * (first == second)
    return bootstrap_ratio(wins, np.ones_like(wins), samples, seed, level)


def unpaired_auc(
    positives: np.ndarray, negatives: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float, float]:
    """ROC AUC of two independent samples (ties half): the chance that a random positive scores above
    a random negative, with a percentile bootstrap that resamples each sample on its own. For samples
    that share no items (held-out human pairs against web candidates); items measured twice belong
    to :func:`paired_win_share`."""
    positives, negatives = np.asarray(positives, float), np.asarray(negatives, float)
    if not len(positives) or not len(negatives):
        return math.nan, math.nan, math.nan

    def auc(first: np.ndarray, second: np.ndarray) -> np.ndarray:
        above = (first[..., :, None] > second[..., None, :]) + 0.5 * (first[..., :, None] == second[..., None, :])
        return above.mean(axis=(-2, -1))

    rng = np.random.default_rng(seed)
    draws = [
        auc(
            positives[rng.integers(0, len(positives), (chunk, len(positives)))],
            negatives[rng.integers(0, len(negatives), (chunk, len(negatives)))],
        )
        for chunk in np.diff(np.r_[0:samples:200, samples])
    ]
    return float(auc(positives, negatives)), *_percentile_interval(np.concatenate(draws), level)


def _percentile_interval(draws, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def paired_nll_difference(first: pd.DataFrame, second: pd.DataFrame, column: str, samples: int, seed: int) -> dict:
    """Per-token NLL of ``column`` under two models on the same items (two frames that
    :func:`humpback.engine.runner.parse_completion_nll` wrote, with ``prompt_id``), and the first minus the second with a
    paired bootstrap interval, over the items both scored."""
    nll, tokens = f"{column}_nll", f"{column}_tokens"
    both = first.merge(second, on="prompt_id", suffixes=("_first", "_second"))
    # an item a model could not score (it did not fit the context) has no NLL
    both = both.loc[both[f"{nll}_first"].notna() & both[f"{nll}_second"].notna()]
    sides = {side: both[[f"{nll}_{side}", f"{tokens}_{side}"]].to_numpy(float) for side in ("first", "second")}
    point, low, high = paired_bootstrap_difference(sides["first"], sides["second"], samples, seed)
    per_token = {
        side: float(values[:, 0].sum() / values[:, 1].sum()) if values[:, 1].sum() else math.nan
        for side, values in sides.items()
    }
    return {
        "items": len(both),
        "first": per_token["first"],
        "second": per_token["second"],
        "difference": point,
        "ci_low": low,
        "ci_high": high,
    }


def _preference_margins(preferences: pd.DataFrame) -> pd.Series:
    """How strongly the model prefers the better reply on each prompt: the worse reply's NLL per
    token minus the better one's (NaN where it could not score both). Unlike the verdict, it moves
    when a model grows more or less sure without changing its mind."""
    margins = preferences["rejected_nll_per_token"] - preferences["chosen_nll_per_token"]
    return margins.where(preferences["prefers_chosen"].notna())


def preference_accuracy(preferences: pd.DataFrame, samples: int, seed: int) -> dict:
    """Share of ranked prompts where the model prefers the best-ranked reply (0.5: no preference
    for the better reply), and the mean margin by which it does, each with a 95 % bootstrap interval
    over prompts."""
    given = preferences["prefers_chosen"].dropna().to_numpy(float)
    point, low, high = bootstrap_ratio(given, np.ones_like(given), samples, seed)
    margins = _preference_margins(preferences).dropna().to_numpy(float)
    margin, margin_low, margin_high = bootstrap_ratio(margins, np.ones_like(margins), samples, seed)
    return {
        "preference_accuracy": point,
        "preference_ci_low": low,
        "preference_ci_high": high,
        "preference_prompts": len(given),
        "preference_margin": margin,
        "preference_margin_ci_low": margin_low,
        "preference_margin_ci_high": margin_high,
    }


def preference_difference(challenger: pd.DataFrame, reference: pd.DataFrame, samples: int, seed: int) -> dict:
    """Preference accuracy and margin of the challenger minus the reference model's, paired over the
    prompts both scored, with 95 % bootstrap intervals."""
    both = challenger.assign(margin=_preference_margins(challenger)).merge(
        reference.assign(margin=_preference_margins(reference)), on="prompt_id", suffixes=("_first", "_second")
    )
    both = both.dropna(subset=["prefers_chosen_first", "prefers_chosen_second"])
    ones = np.ones(len(both))
    result = {}
    for measure, column in (("preference", "prefers_chosen"), ("preference_margin", "margin")):
        point, low, high = paired_bootstrap_difference(
            np.c_[both[f"{column}_first"].to_numpy(float), ones],
            np.c_[both[f"{column}_second"].to_numpy(float), ones],
            samples,
            seed,
        )
        result |= {
            f"{measure}_difference": point,
            f"{measure}_difference_ci_low": low,
            f"{measure}_difference_ci_high": high,
        }
    return result
