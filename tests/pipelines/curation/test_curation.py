import numpy as np
import pandas as pd
import pytest

from humpback.datasets import CheckpointHandle
from humpback.pipelines.curation.nodes import (
    CuratorFailedError,
    build_training_pairs,
    curator_controls,
    score_candidates,
    select_pairs,
    select_random_pairs,
    summarise_curator_controls,
)
from humpback.pipelines.curation.parsing import parse_score
from humpback.pipelines.curation.reports import curation_funnel, score_examples, score_histogram
from tests.conftest import HELDOUT_PAIRS, NO_SHARDS, params
from tests.scripts import scripted


@pytest.mark.parametrize(
    "text, expected",
    [
        ("The answer is relevant and clear.\nScore: 4", (4, "parsed")),
        ("**Score:** 5", (5, "parsed")),
        ("score: 3.", (3, "parsed")),
        ("I would rate this answer 2/5 because it rambles.", (2, "parsed")),
        ("Rating - 3 out of 5", (3, "parsed")),
        ("First I thought Score: 2, but on reflection Score: 5", (5, "parsed")),
        ("Reasoning ...\n4", (4, "parsed")),
        ("Score: 9", (None, "out_of_range")),
        ("Score: 3.5", (None, "out_of_range")),
        ("This answer is good but I will not give a number.", (None, "unparsed")),
        ("", (None, "unparsed")),
        (None, (None, "unparsed")),
        ("Score:", (None, "unparsed")),
    ],
)
def test_score_parser_on_messy_outputs(text, expected):
    assert parse_score(text) == expected


@pytest.fixture
def rated(web_sample) -> pd.DataFrame:
    """Candidates as curation reads them; every third answer is a GOOD one (the scripted rater's rule)."""
    responses = [text + (" GOOD" if i % 3 == 0 else "") for i, text in enumerate(web_sample["text"])]
    return pd.DataFrame(
        {
            "doc_id": web_sample["doc_id"],
            "url": web_sample["url"],
            "response": responses,
            "raw_instruction": "x",
            "instruction": [f"Tell me about item {i}." for i in range(len(web_sample))],
        }
    ).assign(original_response=lambda f: f["response"], rewrite_raw=None, rewrite_status="not_requested")


#: a curator check that passed; selection keeps its pick
PASSED = {"rater": "seed", "passed": True, "reason": None}
FAILED = {"rater": "seed", "passed": False, "reason": "AUC human vs mismatched 0.47 [0.31, 0.62]: lower bound < 0.70"}


def curation(scorer: str, **selection):
    return params("curation", scorer=scorer, selection=selection or {"method": "threshold", "threshold": 5})


GOOD_ROWS = [i % 3 == 0 for i in range(12)]


def test_option_probability_scorer_keeps_what_the_rater_scores_5(rated, tiny_model_dir, tmp_path):
    handle = CheckpointHandle(str(tiny_model_dir), {"role": "seed"})
    generation = params("generation", shard_dir=str(tmp_path))
    scored = score_candidates(rated, handle, scripted("Rater"), curation("option_probabilities"), generation)

    assert scored["doc_id"].tolist() == rated["doc_id"].tolist() and (scored["scorer"] == "option_probabilities").all()
    assert scored["score"].tolist() == [5 if good else 1 for good in GOOD_ROWS]
    np.testing.assert_allclose(scored["option_mass"], 0.9 + 4 * 0.025)
    np.testing.assert_allclose(scored["p_5"], np.where(GOOD_ROWS, 0.9, 0.025))
    # expected score over the options (mass 1.0): 5·0.9 + (1+2+3+4)·0.025 = 4.75; 1·0.9 + (2+3+4+5)·0.025 = 1.25
    np.testing.assert_allclose(scored["expected_score"], np.where(GOOD_ROWS, 4.75, 1.25))
    assert (scored["score_status"] == "parsed").all() and (scored["rater"] == "seed").all()
    kept, summary = select_pairs(scored, PASSED, curation("option_probabilities"))
    assert kept["doc_id"].tolist() == rated.loc[GOOD_ROWS, "doc_id"].tolist() and summary["kept"] == 4


def test_generate_scorer_records_raw_text_and_parse_status(rated, tiny_model_dir):
    rated.loc[1, "response"] += " UNSURE"
    scored = score_candidates(
        rated, CheckpointHandle(str(tiny_model_dir)), scripted("Rater"), curation("generate"), NO_SHARDS
    )

    assert scored["score_raw"].iloc[0] == "The answer is direct and complete.\nScore: 5"
    assert scored["score"].iloc[[0, 2, 3]].tolist() == [5, 1, 5]
    assert (scored.loc[1, "score_status"], pd.isna(scored.loc[1, "score"])) == ("unparsed", True)
    kept, summary = select_pairs(scored, PASSED, curation("generate"))
    assert summary["rated"] == 11 and kept["doc_id"].tolist() == rated.loc[GOOD_ROWS, "doc_id"].tolist()


def test_a_pair_too_long_for_the_context_is_counted_not_fatal(rated, tiny_model_dir):
    rated.loc[2, "response"] = rated.loc[2, "response"] * 30
    scored = score_candidates(
        rated,
        CheckpointHandle(str(tiny_model_dir)),
        scripted("Rater", max_model_len=1024),
        curation("option_probabilities"),
        NO_SHARDS,
    )
    assert scored["score_status"].tolist().count("prompt_too_long") == 1 and pd.isna(scored.loc[2, "score"])
    assert scored["score"].notna().sum() == len(rated) - 1


def scored_frame(scores, expected=None):
    frame = pd.DataFrame(
        {
            "instruction": [f"q{i}" for i in range(len(scores))],
            "response": "a",
            "scorer": "x",
            "score": pd.array(scores, dtype="Int64"),
            "score_status": "parsed",
        }
    )
    return frame.assign(expected_score=expected) if expected is not None else frame


def test_threshold_selection_and_nothing_selected(caplog):
    kept, summary = select_pairs(
        scored_frame([5, 4, None, 3, 5]), PASSED, curation("generate", method="threshold", threshold=5)
    )
    assert kept["instruction"].tolist() == ["q0", "q4"] and summary["kept"] == 2 and summary["rated"] == 4

    kept, summary = select_pairs(
        scored_frame([3, 2, None]), PASSED, curation("generate", method="threshold", threshold=4)
    )
    assert kept.empty and summary["nothing_selected"] is True
    assert "CURATION KEPT NOTHING" in caplog.text

    kept, summary = select_pairs(
        scored_frame([None, None]), PASSED, curation("generate", method="threshold", threshold=4)
    )
    assert kept.empty and summary["rated"] == 0


def test_top_fraction_uses_the_expected_score():
    frame = scored_frame([4, 4, 5, 1], expected=[4.4, 3.6, 4.9, 1.2])
    kept, summary = select_pairs(frame, PASSED, curation("generate", method="top_fraction", top_fraction=0.5))
    assert kept["instruction"].tolist() == ["q0", "q2"]  # original order kept
    kept, _ = select_pairs(frame, PASSED, curation("generate", method="top_fraction", top_fraction=0.1))
    assert kept.empty  # floor(0.4) = 0


def test_training_pairs_and_reports(rated, web_sample):
    seed = pd.DataFrame({"instruction": ["s1", "s2"], "response": ["r1", "r2"], "source": "seed"})
    scored = scored_frame([5, 3, 5])
    curated, summary = select_pairs(scored, PASSED, curation("generate", method="threshold", threshold=5))
    pairs = build_training_pairs(seed, curated)
    assert pairs["source"].tolist() == ["seed", "seed", "augmented", "augmented"]

    candidates = rated.assign(status=["ok"] * (len(rated) - 2) + ["echo", "empty"])
    table, figure = curation_funnel(web_sample, candidates, rated, scored, curated, summary)
    assert table.set_index("stage").loc["kept", "count"] == 2
    assert table.set_index("stage").loc["dropped at augmentation: echo", "count"] == 1
    assert figure.data[0].x[-1] == 2
    nothing, _ = curation_funnel(web_sample, candidates, rated, scored, curated.iloc[:0], {"nothing_selected": True})
    assert "NOTHING KEPT" in nothing.set_index("stage").loc["kept", "note"]
    assert {trace.name for trace in score_histogram(scored).data} == {"x"}
    examples = score_examples(scored, per_score=1)
    assert examples["score"].tolist() == [3, 5]


def test_a_curator_that_tells_answers_from_off_topic_text_passes_its_controls(web_sample, tiny_model_dir):
    rater = CheckpointHandle(str(tiny_model_dir), {"role": "seed"})
    curation = params("curation", scorer="option_probabilities")
    controls = curator_controls(HELDOUT_PAIRS, web_sample, rater, scripted("RelevanceRater"), curation, NO_SHARDS)
    assert controls.groupby("control")["score"].apply(list).to_dict()["human"] == [5, 5, 5, 5]
    assert (controls.loc[controls["control"] == "mismatched", "score"] == 1).all()
    check = summarise_curator_controls(controls, rater, curation)
    assert check["auc_vs_mismatched"] == 1.0 and check["auc_vs_web"] >= 0.7 and check["passed"]
    assert check["control_pairs"] == 12 and check["rated_share"] == 1.0


def test_a_curator_whose_scores_do_not_separate_pairs_fails_at_chance(web_sample, tiny_model_dir, caplog):
    rater = CheckpointHandle(str(tiny_model_dir), {"role": "seed"})
    curation = params("curation", scorer="option_probabilities")
    controls = curator_controls(HELDOUT_PAIRS, web_sample, rater, scripted("ConstantRater"), curation, NO_SHARDS)
    check = summarise_curator_controls(controls, rater, curation)
    assert (check["auc_vs_mismatched"], check["auc_vs_web"], check["passed"]) == (0.5, 0.5, False)
    assert check["reason"] == (
        "AUC human vs mismatched 0.50 [0.50, 0.50]: lower bound < 0.70; AUC human vs web 0.50 [0.50, 0.50]: lower bound < 0.70"
    )
    assert "CURATOR FAILED ITS CONTROLS" in caplog.text
    assert [row["passed"] for row in check["rows"]] == [False, False, True, None]  # every pair rated; spread informs


def test_controls_are_paired_per_prompt_so_prompt_difficulty_cannot_decide(tiny_model_dir):
    """A scorer whose scores mostly follow the prompt (a likelihood does: some prompts are easy) but
    that always ranks a prompt's own answer first: per prompt it is perfect, while a ROC AUC over the
    pooled scores sits near chance and failed it."""
    prompts = [f"p{i}" for i in range(20)]
    difficulty = np.linspace(0, 10, len(prompts))
    controls = pd.concat(
        [
            pd.DataFrame(
                {
                    "prompt_id": prompts,
                    "control": kind,
                    "score": 3,
                    "expected_score": difficulty + bonus,
                    "option_mass": 1.0,
                }
            )
            for kind, bonus in (("human", 0.5), ("mismatched", 0.0), ("web", 0.2))
        ],
        ignore_index=True,
    )
    human, mismatched = difficulty + 0.5, difficulty
    pooled = ((human[:, None] > mismatched[None, :]) + 0.5 * (human[:, None] == mismatched[None, :])).mean()
    assert pooled < 0.6  # a ROC AUC over the pooled scores, the old measure: near chance
    check = summarise_curator_controls(
        controls, CheckpointHandle(str(tiny_model_dir), {"role": "seed"}), params("curation")
    )
    assert (check["auc_vs_mismatched"], check["auc_vs_mismatched_ci_low"], check["prompts_vs_mismatched"]) == (
        1.0,
        1.0,
        20,
    )
    assert check["auc_vs_web"] == 1.0 and check["passed"]


def test_a_control_passes_on_the_lower_bound_of_its_interval(tiny_model_dir):
    """15 of 20 prompts ranked right: 0.75 is above 0.7, its interval's lower bound is not."""
    wins = np.array([1.0] * 15 + [-1.0] * 5)
    controls = pd.concat(
        [
            pd.DataFrame(
                {"prompt_id": range(20), "control": "human", "score": 3, "expected_score": wins, "option_mass": 1.0}
            ),
            pd.DataFrame(
                {"prompt_id": range(20), "control": "mismatched", "score": 3, "expected_score": 0.0, "option_mass": 1.0}
            ),
            pd.DataFrame(
                {"prompt_id": range(20), "control": "web", "score": 3, "expected_score": -5.0, "option_mass": 1.0}
            ),
        ],
        ignore_index=True,
    )
    check = summarise_curator_controls(
        controls, CheckpointHandle(str(tiny_model_dir), {"role": "seed"}), params("curation")
    )
    assert check["auc_vs_mismatched"] == 0.75 and check["auc_vs_mismatched_ci_low"] < 0.7 and not check["passed"]
    assert "lower bound < 0.70" in check["reason"] and "web" not in check["reason"]


def test_a_generate_curator_that_often_gives_no_score_fails_on_its_parse_rate(web_sample, tiny_model_dir):
    rater = CheckpointHandle(str(tiny_model_dir), {"role": "seed"})
    curation = params("curation", scorer="generate")
    controls = curator_controls(HELDOUT_PAIRS, web_sample, rater, scripted("RelevanceRater"), curation, NO_SHARDS)
    assert controls.groupby("control")["score_status"].apply(set).to_dict()["web"] == {"unparsed"}  # long texts
    check = summarise_curator_controls(controls, rater, curation)
    assert check["rated_share"] == 8 / 12 and check["auc_vs_mismatched"] == 1.0 and not check["passed"]
    assert "rated 67% of control pairs < 90%" in check["reason"]
    assert check["rows"][2]["check"] == "share of control pairs rated (parse rate)"


def test_random_selection_draws_as_many_as_curation_kept_from_the_pairs_it_rated():
    rng = np.random.default_rng(0)
    scores = [None if i % 7 == 0 else 1 + i % 5 for i in range(60)]
    frame = scored_frame(scores, expected=rng.uniform(1, 5, 60))
    curated, summary = select_pairs(frame, PASSED, curation("generate", method="top_fraction", top_fraction=0.2))
    drawn, random_summary = select_random_pairs(frame, summary, curation("generate"))

    assert len(drawn) == summary["kept"] == random_summary["kept"] == 10  # floor(51 × 0.2)
    rated = set(frame.loc[frame["score"].notna(), "instruction"])
    assert set(drawn["instruction"]) <= rated and set(drawn["instruction"]) != set(curated["instruction"])
    again, _ = select_random_pairs(frame, summary, curation("generate"))
    other, _ = select_random_pairs(frame, summary, params("curation", scorer="generate", random_selection_seed=1))
    assert again.equals(drawn) and not other.equals(drawn)  # the seed decides the draw
    assert random_summary["mean_expected_score_curated"] == summary["mean_expected_score_kept"] > 4.5
    assert random_summary["mean_expected_score_kept"] < summary["mean_expected_score_kept"]
    assert random_summary["method"] == "random" and random_summary["rated"] == 51


def test_a_rating_cut_at_max_new_tokens_gives_no_score(rated, tiny_model_dir):
    """'Score: 5' inside a cut rationale is not the rater's verdict: its last line never came."""
    scored = score_candidates(
        rated, CheckpointHandle(str(tiny_model_dir)), scripted("StillWriting"), curation("generate"), NO_SHARDS
    )
    assert (scored["score_status"] == "truncated").all() and scored["score"].isna().all()


@pytest.mark.parametrize(
    "action, kept, taken",
    [("warn", ["q0", "q4"], "kept_despite_failed_controls"), ("seed_only", [], "seed_only")],
)
def test_selection_reacts_to_a_curator_that_failed_its_controls(action, kept, taken, caplog):
    """Before, selection ignored the curator's verdict: a failed curator's pick trained M1 unsaid."""
    settings = curation("generate", method="threshold", threshold=5).model_copy(update={"on_failed_controls": action})
    selected, summary = select_pairs(scored_frame([5, 4, None, 3, 5]), FAILED, settings)
    assert selected["instruction"].tolist() == kept
    assert (summary["curator_passed"], summary["on_failed_controls"], summary["action"]) == (False, action, taken)
    assert "CURATOR FAILED ITS CONTROLS" in caplog.text


def test_a_failed_curator_stops_the_run_when_asked():
    settings = curation("generate", method="threshold", threshold=5).model_copy(update={"on_failed_controls": "stop"})
    with pytest.raises(
        CuratorFailedError, match=r"failed its controls: AUC human vs mismatched 0.47.*seed_only or warn"
    ):
        select_pairs(scored_frame([5, 4]), FAILED, settings)


def test_an_option_curator_that_puts_little_mass_on_the_score_options_fails(web_sample, tiny_model_dir):
    """Before, its check read "share of control pairs rated: 1.0", true by construction."""
    rater = CheckpointHandle(str(tiny_model_dir), {"role": "seed"})
    settings = params("curation", scorer="option_probabilities")
    controls = curator_controls(HELDOUT_PAIRS, web_sample, rater, scripted("OffRubricRater"), settings, NO_SHARDS)
    check = summarise_curator_controls(controls, rater, settings)
    assert check["option_mass"] == pytest.approx(0.05) and check["auc_vs_mismatched"] == 1.0
    assert not check["passed"] and "option mass 0.05 < 0.50" in check["reason"]
    assert check["rated_share"] == 1.0 and "rated" not in check["reason"]
