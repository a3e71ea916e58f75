import json

import numpy as np
import pandas as pd
import pytest

from humpback.pipelines.study.nodes import ARMS, arm_training_pairs, study_results
from tests.conftest import params

#: the scored pool as the study's first node writes it: 10 candidates × 4 scorers
POOL = pd.concat(
    [
        pd.DataFrame(
            {
                "doc_id": [f"d{i}" for i in range(10)],
                "instruction": [f"q{i}" for i in range(10)],
                "response": [f"a{i}" for i in range(10)],
                "scorer": scorer,
                "value": np.arange(10.0) * (1 if scorer != "implicit_reward" else -1),
                # pmi's IFD floor set the three lowest aside
                "score": pd.array([None if scorer == "pmi" and i < 3 else 3 for i in range(10)], dtype="Int64"),
            }
        )
        for scorer in ("option_probabilities", "pmi", "implicit_reward", "combined")
    ],
    ignore_index=True,
)
SEED_PAIRS = pd.DataFrame({"instruction": [f"s{i}" for i in range(8)], "response": "r", "source": "seed"})


def study(**changes):
    return params("study", **({"arm_size": 4} | changes))


def test_each_arm_holds_its_pick_under_the_same_tag(caplog):
    picks = {arm: arm_training_pairs(arm, POOL, SEED_PAIRS, study()) for arm in ARMS}
    assert picks["curated_option_probabilities"]["instruction"].tolist() == ["q9", "q8", "q7", "q6"]
    assert picks["curated_implicit_reward"]["instruction"].tolist() == ["q0", "q1", "q2", "q3"]
    assert set(picks["random_a"]["instruction"]) != set(picks["random_b"]["instruction"])  # two draws
    assert picks["seed"]["instruction"].str.startswith("s").all()
    assert all((pairs["source"] == "seed").all() and len(pairs) == 4 for pairs in picks.values())
    # the IFD floor: pmi has 7 keepable pairs, so an arm of 8 gets 7, and says so
    floored = arm_training_pairs("curated_pmi", POOL, SEED_PAIRS, study(arm_size=8))
    assert len(floored) == 7 and "q2" not in set(floored["instruction"])
    assert "study arm curated_pmi: 7 pairs, fewer than arm_size 8" in caplog.text
    with pytest.raises(ValueError, match="unknown study arm"):
        arm_training_pairs("curated_generate", POOL, SEED_PAIRS, study())


def scores_of(
    nll_per_token: float, prefers: np.ndarray, prompts: int = 40, margin: float = 0.3
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """An arm's reference NLL (10 tokens per answer, noise around ``nll_per_token``) and preferences:
    each prompt's worse reply ``margin`` nats a token above the better one where it ``prefers`` the
    better, below it where not."""
    noise = np.random.default_rng(int(nll_per_token * 100)).normal(0, 0.02, prompts)
    reference = pd.DataFrame(
        {
            "prompt_id": range(prompts),
            "reference_tokens": 10,
            "reference_nll": 10 * (nll_per_token + noise) + 3,  # the end token: 3 nats
            "reference_content_tokens": 9,
            "reference_content_nll": 9 * (nll_per_token + noise),
            "status": "ok",
        }
    )
    chosen = np.full(prompts, nll_per_token)
    preferences = pd.DataFrame(
        {
            "prompt_id": range(prompts),
            "chosen_nll_per_token": chosen,
            "rejected_nll_per_token": chosen + np.where(prefers == 1, margin, -margin) * (prefers != 0.5),
            "prefers_chosen": prefers,
            "status": "ok",
        }
    )
    return reference, preferences


def test_the_study_says_whether_curation_beat_both_random_arms_by_more_than_they_differ():
    rng = np.random.default_rng(0)
    base = (rng.random(40) < 0.6).astype(float)
    better = np.maximum(base, (rng.random(40) < 0.5).astype(float))  # prefers the better reply more often
    frames = {arm: scores_of(2.0, base) for arm in ARMS}
    frames["curated_pmi"] = scores_of(1.8, better)
    frames["random_b"] = scores_of(2.01, np.where(rng.random(40) < 0.2, 1 - base, base))  # another draw
    table, summary = study_results(study(), *(frame for arm in ARMS for frame in frames[arm]))

    rows = table.set_index("arm")
    assert list(rows.index) == list(ARMS) and np.isnan(rows.loc["random_a", "preference_difference"])
    assert rows.loc["curated_pmi", "reference_content_nll_difference"] == pytest.approx(-0.2, abs=0.02)
    assert rows.loc["curated_pmi", "reference_content_nll_vs_random_ci_high"] < 0
    assert summary["random_spread"]["reference_content_nll"] == pytest.approx(0.01, abs=0.01)
    verdict = summary["curated_arms"]["curated_pmi"]
    assert verdict["lower_nll_than_both_random"] and verdict["higher_preference_than_both_random"]
    assert verdict["higher_margin_than_both_random"]  # more prompts preferred by the same margin
    assert not summary["curated_arms"]["curated_combined"]["lower_nll_than_both_random"]  # same as random
    assert summary["curation_beat_random"]
    assert json.loads(json.dumps(summary)) == summary  # the catalog saves it as JSON
    # what the design can detect: about 2.8 standard errors of a paired comparison of 40 prompts
    assert 0 < summary["detectable_difference"]["reference_content_nll"] < 0.05
    assert 0.05 < summary["detectable_difference"]["preference"] < 0.5


def test_a_study_where_no_arm_differs_says_curation_did_not_beat_random():
    same = np.random.default_rng(1).random(40) < 0.6
    frames = [frame for _ in ARMS for frame in scores_of(2.0, same.astype(float))]
    _, summary = study_results(study(), *frames)
    assert not summary["curation_beat_random"]
    assert summary["random_spread"] == {
        "reference_content_nll": 0.0,
        "preference_accuracy": 0.0,
        "preference_margin": 0.0,
    }


def test_an_arm_surer_of_the_same_verdicts_beats_random_on_the_margin_alone():
    """Verdicts that never flip leave preference accuracy level; the margin still sees an arm that
    prefers the better reply by more, and only that arm."""
    verdicts = (np.random.default_rng(2).random(40) < 0.7).astype(float)
    frames = {arm: scores_of(2.0, verdicts) for arm in ARMS}
    frames["curated_combined"] = scores_of(2.0, verdicts, margin=0.6)
    frames["random_b"] = scores_of(2.0, verdicts, margin=0.29)
    table, summary = study_results(study(), *(frame for arm in ARMS for frame in frames[arm]))
    rows = table.set_index("arm")
    assert rows.loc["curated_combined", "preference_difference"] == 0
    assert rows.loc["curated_combined", "preference_margin"] > rows.loc["random_a", "preference_margin"]
    verdict = summary["curated_arms"]["curated_combined"]
    assert verdict["higher_margin_than_both_random"] and not verdict["higher_preference_than_both_random"]
    assert not summary["curated_arms"]["curated_pmi"]["higher_margin_than_both_random"]
    assert summary["curation_beat_random"]
    assert 0 < summary["detectable_difference"]["preference_margin"] < 0.3
