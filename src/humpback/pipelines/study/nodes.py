"""The curated-vs-random study: arms trained on the same number of pairs alone, compared on
judge-free measures against two random arms, whose own difference is the study's noise floor.

Each arm holds ``study.arm_size`` pairs: the candidates a forward-pass scorer ranks highest (one
arm per scorer), two random draws of candidates, or seed pairs. Every arm trains with M1's training
block under the same tag (the pairs are labelled ``seed``, so the assistant tag that evaluation
answers under), so the arms differ only in which pairs they hold.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from humpback.data.hand_labels import labelled_pairs
from humpback.data.style import WebStyleDetector, answer_style
from humpback.engine.runner import OK
from humpback.params import FORWARD_PASS_SCORERS, StudyParams
from humpback.reports.statistics import (
    DETECTABLE_IN_STANDARD_ERRORS,
    paired_bootstrap_difference,
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


#: the sensitivity arms: hand-labelled good pairs, and two length-matched draws of pairs labelled 1
SENSITIVITY_ARMS = ("oracle_good", "oracle_bad_a", "oracle_bad_b")
#: what the sensitivity test reads: each measure and the sign of a better difference
SENSITIVITY_MEASURES = (
    ("reference_content_nll", -1),
    ("preference", 1),
    ("preference_margin", 1),
    ("web_style", -1),
    ("on_topic_opening", 1),
)


def sensitivity_arm_pairs(
    arm: str, hand_labels: pd.DataFrame, web_documents: pd.DataFrame, params: StudyParams
) -> pd.DataFrame:
    """An arm of the sensitivity test, from the hand labels (their documents' text from the run):
    every pair labelled ``study.sensitivity_good_label`` or more, or one of two disjoint draws of
    pairs labelled 1, each pair of a draw matched to a good one by its document's length (the two
    nearest label-1 documents of each good one, one to each draw by a seeded coin), so that what
    the arms differ by is the label, not the answers' length."""
    if arm not in SENSITIVITY_ARMS:
        raise ValueError(f"unknown sensitivity arm {arm!r}; arms: {', '.join(SENSITIVITY_ARMS)}")
    labelled = labelled_pairs(hand_labels, web_documents)
    good = labelled.loc[labelled["score"] >= params.sensitivity_good_label].sort_values("doc_id")
    bad = labelled.loc[labelled["score"] <= 1]
    if len(bad) < 2 * len(good) or good.empty:
        raise ValueError(
            f"the sensitivity test needs pairs labelled ≥ {params.sensitivity_good_label} and twice as many "
            f"labelled 1 among this run's documents: {len(good)} and {len(bad)}"
        )
    if arm == "oracle_good":
        picked = good
    else:
        lengths, rng = bad["text"].str.len(), np.random.default_rng(params.seed)
        draws: dict[str, list[int]] = {"oracle_bad_a": [], "oracle_bad_b": []}
        for length in good["text"].str.len():
            nearest = (lengths - length).abs().sort_values(kind="stable").index[:2]
            lengths = lengths.drop(nearest)
            first, second = nearest if rng.random() < 0.5 else nearest[::-1]
            draws["oracle_bad_a"].append(first)
            draws["oracle_bad_b"].append(second)
        picked = bad.loc[draws[arm]]
    return (
        picked.rename(columns={"text": "response"})[["instruction", "response"]]
        .assign(source="seed")
        .reset_index(drop=True)
    )


def _style_difference(first: pd.DataFrame, second: pd.DataFrame, measure: str, params: StudyParams) -> tuple:
    both = first.merge(second, on="prompt_id", suffixes=("_first", "_second"))
    ones = np.ones(len(both))
    return paired_bootstrap_difference(
        np.c_[both[f"{measure}_first"].to_numpy(float), ones],
        np.c_[both[f"{measure}_second"].to_numpy(float), ones],
        params.bootstrap_samples,
        params.seed,
    )


def _sensitivity_difference(first: dict, second: dict, params: StudyParams) -> dict[str, tuple[float, float, float]]:
    """Each measure of ``first`` minus ``second``, paired over prompts: (difference, low, high),
    rounded to 12 decimals (two arms with equal values differ by float noise in their sums' ratio)."""
    samples, seed = params.bootstrap_samples, params.seed
    nll = paired_nll_difference(first["reference_nll"], second["reference_nll"], "reference_content", samples, seed)
    preference = preference_difference(first["preferences"], second["preferences"], samples, seed)
    result = {"reference_content_nll": (nll["difference"], nll["ci_low"], nll["ci_high"])}
    for measure in PREFERENCE_MEASURES:
        result[measure] = tuple(preference[f"{measure}_difference{suffix}"] for suffix in ("", "_ci_low", "_ci_high"))
    for measure in ("web_style", "on_topic_opening"):
        result[measure] = _style_difference(first["style"], second["style"], measure, params)
    return {measure: tuple(round(float(value), 12) for value in values) for measure, values in result.items()}


def sensitivity_results(params: StudyParams, detector: dict, *frames: pd.DataFrame) -> tuple[pd.DataFrame, dict]:
    """Can the study's measures see the quality of the pairs at all? Oracle-good against each
    oracle-bad arm, read against the two bad draws' own difference.

    Args:
        params: the study block.
        detector: the evaluation's web-style detector (``evaluation.style_detector``).
        frames: for each arm of :data:`SENSITIVITY_ARMS` in order, its reference NLL, preferences and
            greedy responses (evaluation's ``score_references``, ``score_preferences`` and
            ``generate_responses`` frames).

    Returns:
        One row per comparison (good − bad_a, good − bad_b, bad_b − bad_a) and measure, with its
        paired 95 % interval, and a summary: per measure whether good beats both bad draws (both
        intervals on the better side of 0, both differences larger than the bad draws' difference)
        and the smallest difference the comparison can detect (2.8 standard errors of the bad draws'
        comparison); ``measures_that_separate`` empty means this scale cannot measure curation by them.
    """
    if len(frames) != 3 * len(SENSITIVITY_ARMS):
        raise ValueError(f"sensitivity_results needs 3 frames for each of {len(SENSITIVITY_ARMS)} arms")
    scorer = WebStyleDetector.from_dict(detector)
    arms = {
        arm: {
            "reference_nll": frames[3 * i],
            "preferences": frames[3 * i + 1],
            "style": answer_style(frames[3 * i + 2].loc[frames[3 * i + 2]["status"] == OK], scorer),
        }
        for i, arm in enumerate(SENSITIVITY_ARMS)
    }
    good, bad_a, bad_b = SENSITIVITY_ARMS
    comparisons = {
        f"{good} - {bad_a}": _sensitivity_difference(arms[good], arms[bad_a], params),
        f"{good} - {bad_b}": _sensitivity_difference(arms[good], arms[bad_b], params),
        f"{bad_b} - {bad_a}": _sensitivity_difference(arms[bad_b], arms[bad_a], params),
    }
    table = pd.DataFrame(
        [
            {"comparison": name, "measure": measure, "difference": point, "ci_low": low, "ci_high": high}
            for name, differences in comparisons.items()
            for measure, (point, low, high) in differences.items()
        ]
    )
    spread_name = f"{bad_b} - {bad_a}"
    verdicts = {}
    for measure, better in SENSITIVITY_MEASURES:
        spread, spread_low, spread_high = comparisons[spread_name][measure]
        against = [comparisons[f"{good} - {bad}"][measure] for bad in (bad_a, bad_b)]
        separates = all(
            min(better * low, better * high) > 0 and abs(point) > abs(spread) for point, low, high in against
        )
        verdicts[measure] = {
            "good_minus_bad": [point for point, _, _ in against],
            "bad_draws_spread": spread,
            "detectable_difference": float(DETECTABLE_IN_STANDARD_ERRORS * (spread_high - spread_low) / (2 * 1.96)),
            "separates": bool(separates),
        }
    separating = [measure for measure, verdict in verdicts.items() if verdict["separates"]]
    summary = {
        "arm_pairs": {arm: int(len(arms[arm]["style"])) for arm in SENSITIVITY_ARMS},
        "measures": verdicts,
        "measures_that_separate": separating,
        "can_measure_curation": bool(separating),
    }
    logger.info(
        "sensitivity: oracle-good %s oracle-bad beyond the bad draws' spread (%s)",
        "separates from" if separating else "does NOT separate from",
        ", ".join(separating) or "no measure: this scale cannot measure curation by them",
    )
    return table, summary
