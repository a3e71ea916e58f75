"""The curated-vs-random study: arms trained on the same number of pairs alone, compared on
judge-free measures against two random arms, whose own difference is the study's noise floor.

Each arm holds ``study.arm_size`` pairs: the candidates a forward-pass scorer ranks highest (one
arm per scorer), two random draws of candidates, or seed pairs. Every arm trains with M1's training
block under the same tag (the pairs are labelled ``seed``, so the assistant tag that evaluation
answers under), so the arms differ only in which pairs they hold.
"""

from __future__ import annotations

import logging

import pandas as pd

from humpback.params import FORWARD_PASS_SCORERS, StudyParams
from humpback.reports.statistics import (
    DETECTABLE_IN_STANDARD_ERRORS,
    paired_nll_difference,
    preference_accuracy,
    preference_difference,
)

logger = logging.getLogger(__name__)

RANDOM_ARMS = ("random_a", "random_b")
#: every arm, in the order of the table: one per forward-pass scorer, two random draws, seed pairs
ARMS = (*(f"curated_{scorer}" for scorer in FORWARD_PASS_SCORERS), *RANDOM_ARMS, "seed")
#: the ranked-reply measures compared between arms: the share of verdicts for the better reply, and
#: the mean margin by which it is preferred (finer: verdicts rarely flip between similar models)
PREFERENCE_MEASURES = ("preference", "preference_margin")
#: what the verdict reads: each measure, the sign of a better difference, and the verdict's name
VERDICTS = (
    ("reference_content_nll", -1, "lower_nll"),
    ("preference", 1, "higher_preference"),
    ("preference_margin", 1, "higher_margin"),
)


def arm_training_pairs(arm: str, pool: pd.DataFrame, seed_pairs: pd.DataFrame, params: StudyParams) -> pd.DataFrame:
    """The ``arm``'s training pairs from the scored candidate ``pool`` (one row per candidate and
    scorer) or the seed pairs, labelled ``seed`` so every arm trains under the same tag. An arm
    that cannot fill ``arm_size`` (a scorer's IFD floor, a small pool) says so and trains on fewer."""
    if arm not in ARMS:
        raise ValueError(f"unknown study arm {arm!r}; arms: {', '.join(ARMS)}")
    size = params.arm_size
    if arm == "seed":
        picked = seed_pairs.sample(n=min(size, len(seed_pairs)), random_state=params.seed)
    elif arm in RANDOM_ARMS:
        candidates = pool.loc[pool["scorer"] == FORWARD_PASS_SCORERS[0]].dropna(subset=["value"])
        seed = params.random_seeds[RANDOM_ARMS.index(arm)]
        picked = candidates.sample(n=min(size, len(candidates)), random_state=seed)
    else:
        scorer = arm.removeprefix("curated_")
        keepable = pool.loc[(pool["scorer"] == scorer) & pool["score"].notna()]  # the IFD floor leaves no score
        picked = keepable.sort_values("value", ascending=False, kind="stable").head(size)
    if len(picked) < size:
        logger.warning("study arm %s: %d pairs, fewer than arm_size %d", arm, len(picked), size)
    return picked[["instruction", "response"]].assign(source="seed").reset_index(drop=True)


def _measures(reference_nll: pd.DataFrame, preferences: pd.DataFrame, params: StudyParams) -> dict:
    def per_token(column: str) -> float:
        fitted = reference_nll.dropna(subset=[f"{column}_nll"])
        return float(fitted[f"{column}_nll"].sum() / fitted[f"{column}_tokens"].sum())

    return {
        "reference_nll": per_token("reference"),
        "reference_content_nll": per_token("reference_content"),
        **preference_accuracy(preferences, params.bootstrap_samples, params.seed),
    }


def _against(arm: dict, random: dict, params: StudyParams) -> dict:
    """The arm minus a random arm, paired over prompts, with 95 % bootstrap intervals."""
    samples, seed = params.bootstrap_samples, params.seed
    result = {}
    for column in ("reference", "reference_content"):
        nll = paired_nll_difference(arm["reference_nll"], random["reference_nll"], column, samples, seed)
        result |= {f"{column}_nll_difference": nll["difference"], f"{column}_nll_ci": (nll["ci_low"], nll["ci_high"])}
    preference = preference_difference(arm["preferences"], random["preferences"], samples, seed)
    for measure in PREFERENCE_MEASURES:
        result |= {
            f"{measure}_difference": preference[f"{measure}_difference"],
            f"{measure}_ci": (preference[f"{measure}_difference_ci_low"], preference[f"{measure}_difference_ci_high"]),
        }
    return result


def study_results(params: StudyParams, *scores: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """The study's table and verdict.

    Args:
        params: the study block.
        scores: for each arm of :data:`ARMS` in order, its reference NLL and its preferences (the
            evaluation stage's ``score_references`` and ``score_preferences`` frames).

    Returns:
        One row per arm (per-token reference NLL with and without the end token, preference
        accuracy and margin with their intervals, and each measure minus ``random_a``'s, paired over
        prompts, with its interval) and a summary: the difference between the two random arms (the noise
        between draws), the smallest difference a comparison can detect (2.8 standard errors of
        the paired comparison of the two random arms, which differ by their draw alone), and for
        each curated arm whether it beat random: every interval against both random arms on the
        better side of 0, and by more than the random arms differ.
    """
    if len(scores) != 2 * len(ARMS):
        raise ValueError(f"study_results needs a reference NLL and preferences frame for each of {len(ARMS)} arms")
    arms = {arm: {"reference_nll": scores[2 * i], "preferences": scores[2 * i + 1]} for i, arm in enumerate(ARMS)}
    rows, widths = [], {}
    for arm, frames in arms.items():
        row = {"arm": arm, **_measures(frames["reference_nll"], frames["preferences"], params)}
        if arm != "random_a":
            versus = _against(frames, arms["random_a"], params)
            row |= {key: value for key, value in versus.items() if not key.endswith("_ci")}
            for key in ("reference_nll", "reference_content_nll", *PREFERENCE_MEASURES):
                low, high = versus[f"{key}_ci"]
                row |= {f"{key}_vs_random_ci_low": low, f"{key}_vs_random_ci_high": high}
            if arm == "random_b":  # two arms that differ by their draw alone: the comparison's own noise
                widths = {key: versus[f"{key}_ci"][1] - versus[f"{key}_ci"][0] for key, _, _ in VERDICTS}
        rows.append(row)
    table = pd.DataFrame(rows)
    by_arm = table.set_index("arm")
    spread = by_arm.loc["random_b"]
    # a 95 % interval is 2 × 1.96 standard errors wide
    detectable = {
        measure: float(DETECTABLE_IN_STANDARD_ERRORS * width / (2 * 1.96)) for measure, width in widths.items()
    }
    verdicts = {}
    for arm in (a for a in ARMS if a.startswith("curated_")):
        against_b = _against(arms[arm], arms["random_b"], params)
        row = by_arm.loc[arm]
        verdicts[arm] = {
            "content_nll_difference": float(row["reference_content_nll_difference"]),
            "preference_difference": float(row["preference_difference"]),
            "preference_margin_difference": float(row["preference_margin_difference"]),
        }
        for measure, better, verdict in VERDICTS:
            intervals = (
                (row[f"{measure}_vs_random_ci_low"], row[f"{measure}_vs_random_ci_high"]),
                against_b[f"{measure}_ci"],
            )
            better_side = all(min(better * low, better * high) > 0 for low, high in intervals)
            beyond_spread = abs(row[f"{measure}_difference"]) > abs(spread[f"{measure}_difference"])
            verdicts[arm][f"{verdict}_than_both_random"] = bool(better_side and beyond_spread)
    summary = {
        "arm_size": params.arm_size,
        "random_spread": {
            "reference_content_nll": float(spread["reference_content_nll_difference"]),
            "preference_accuracy": float(spread["preference_difference"]),
            "preference_margin": float(spread["preference_margin_difference"]),
        },
        "detectable_difference": detectable,
        "curated_arms": verdicts,
        "curation_beat_random": any(
            verdict[f"{name}_than_both_random"] for verdict in verdicts.values() for _, _, name in VERDICTS
        ),
    }
    logger.info(
        "study: curation %s random (detectable: %.4f nats/token, %.3f preference accuracy, %.4f preference margin; "
        "random arms differ by %.4f, %.3f and %.4f)",
        "BEAT" if summary["curation_beat_random"] else "did not beat",
        detectable["reference_content_nll"],
        detectable["preference"],
        detectable["preference_margin"],
        summary["random_spread"]["reference_content_nll"],
        summary["random_spread"]["preference_accuracy"],
        summary["random_spread"]["preference_margin"],
    )
    return table, summary
