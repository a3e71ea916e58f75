import json

import numpy as np
import pandas as pd
import pytest

from humpback.data.style import WebStyleDetector
from humpback.pipelines.study.nodes import (
    ARMS,
    SENSITIVITY_ARMS,
    arm_training_pairs,
    sensitivity_arm_pairs,
    sensitivity_results,
    study_results,
)
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


def labels_and_documents(good: int = 4, bad: int = 10) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Hand labels as labels/candidate_labels.csv holds them, with their documents: good pairs
    (labels 2 and 3) and label-1 pairs of every length from 100 to 1,000 characters."""
    lengths = [250, 400, 550, 700][:good] + list(np.linspace(100, 1000, bad).astype(int))
    scores = [2, 3, 2, 3][:good] + [1] * bad
    ids = [f"doc{i:02d}" for i in range(len(scores))]
    labels = pd.DataFrame({"doc_id": ids, "instruction": [f"q{i}" for i in ids], "score": scores})
    documents = pd.DataFrame({"doc_id": ids, "text": ["x" * n for n in lengths]})
    return labels, documents


def test_the_sensitivity_arms_are_the_good_pairs_and_two_disjoint_length_matched_bad_draws():
    labels, documents = labels_and_documents(good=4, bad=40)  # as the labels: ~3 label-1 pairs a good one
    arms = {arm: sensitivity_arm_pairs(arm, labels, documents, study()) for arm in SENSITIVITY_ARMS}
    good, bad_a, bad_b = (arms[arm] for arm in SENSITIVITY_ARMS)
    score = labels.set_index("instruction")["score"]
    assert (score[good["instruction"]] >= 2).all() and len(good) == 4
    assert (score[bad_a["instruction"]] == 1).all() and (score[bad_b["instruction"]] == 1).all()
    assert len(bad_a) == len(bad_b) == 4 and not set(bad_a["instruction"]) & set(bad_b["instruction"])
    mean_length = {arm: pairs["response"].str.len().mean() for arm, pairs in arms.items()}
    # matched: each draw's mean length within 25 characters of the good arm's (475), where a draw of
    # the shortest label-1 documents would be ~330 short and one of the longest ~480 long
    assert all(abs(mean_length[bad] - mean_length["oracle_good"]) <= 25 for bad in ("oracle_bad_a", "oracle_bad_b"))
    again = sensitivity_arm_pairs("oracle_bad_a", labels, documents, study())
    assert again.equals(bad_a) and (good["source"] == "seed").all()
    with pytest.raises(ValueError, match="twice as many"):
        sensitivity_arm_pairs("oracle_bad_a", *labels_and_documents(good=4, bad=7), study())


def responses_of(web_like: np.ndarray, prompts: int = 40) -> pd.DataFrame:
    """Greedy answers: web-like ones carry a link, the others an assistant's opening."""
    return pd.DataFrame(
        {
            "prompt_id": range(prompts),
            "instruction": [f"Tell me about topic{i}" for i in range(prompts)],
            "response": np.where(web_like, "Visit https://shop.example.com today", "I hope this helps with topic"),
            "status": "ok",
        }
    )


DETECTOR = WebStyleDetector(log_ratios={"<url>": 2.0, "i": -1.0}, window_chars=500).to_dict()


def test_the_sensitivity_test_says_which_measures_tell_good_pairs_from_bad_beyond_the_bad_draws_spread():
    rng = np.random.default_rng(0)
    prefers = (rng.random(40) < 0.6).astype(float)
    bad_links = rng.random(40) < 0.5
    frames = {
        "oracle_good": (*scores_of(1.8, prefers), responses_of(np.zeros(40, bool))),
        "oracle_bad_a": (*scores_of(2.0, prefers), responses_of(bad_links)),
        "oracle_bad_b": (*scores_of(2.01, prefers), responses_of(bad_links)),
    }
    table, summary = sensitivity_results(study(), DETECTOR, *(f for arm in SENSITIVITY_ARMS for f in frames[arm]))
    # the good arm's answers fit better, carry no link and open on the request; preferences are alike
    assert summary["measures_that_separate"] == ["reference_content_nll", "web_style", "on_topic_opening"]
    assert summary["can_measure_curation"] and summary["arm_pairs"] == dict.fromkeys(SENSITIVITY_ARMS, 40)
    nll = summary["measures"]["reference_content_nll"]
    assert nll["good_minus_bad"][0] == pytest.approx(-0.2, abs=0.02) and nll["bad_draws_spread"] == pytest.approx(
        0.01, abs=0.01
    )
    assert set(table["comparison"]) == {
        "oracle_good - oracle_bad_a",
        "oracle_good - oracle_bad_b",
        "oracle_bad_b - oracle_bad_a",
    }
    same = {arm: (*scores_of(2.0, prefers), responses_of(bad_links)) for arm in SENSITIVITY_ARMS}
    _, blind = sensitivity_results(study(), DETECTOR, *(f for arm in SENSITIVITY_ARMS for f in same[arm]))
    assert blind["measures_that_separate"] == [] and not blind["can_measure_curation"]
