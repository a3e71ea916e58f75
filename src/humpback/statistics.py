"""Small statistics shared by the method-health checks: ROC AUC with a bootstrap interval."""

from __future__ import annotations

import math

import numpy as np


def roc_auc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """Probability that a positive scores above a negative, ties counting half (Mann–Whitney)."""
    positives, negatives = np.asarray(positives, float), np.asarray(negatives, float)
    if not len(positives) or not len(negatives):
        return math.nan
    above = (positives[:, None] > negatives[None, :]).mean()
    equal = (positives[:, None] == negatives[None, :]).mean()
    return float(above + equal / 2)


def bootstrap_auc(
    positives: np.ndarray, negatives: np.ndarray, samples: int, seed: int, level: float = 0.95
) -> tuple[float, float, float]:
    """ROC AUC and its percentile bootstrap interval (each group resampled with replacement)."""
    positives, negatives = np.asarray(positives, float), np.asarray(negatives, float)
    point = roc_auc(positives, negatives)
    if math.isnan(point):
        return point, math.nan, math.nan
    rng = np.random.default_rng(seed)
    draws = [
        roc_auc(rng.choice(positives, len(positives)), rng.choice(negatives, len(negatives))) for _ in range(samples)
    ]
    tail = 100 * (1 - level) / 2
    return point, float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))
