"""Evaluation nodes on real data shapes: held-out prompts, order-swapped judging, summaries, cards."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml
from huggingface_hub import ModelCard
from transformers import AutoTokenizer

from humpback.data.style import WebStyleDetector
from humpback.datasets import CheckpointHandle
from humpback.pipelines.evaluation import nodes
from humpback.reports import health, statistics
from humpback.reports.model_card import render_model_card
from tests.conftest import HELDOUT_PAIRS, NO_SHARDS, params
from tests.health_checks import CURATOR
from tests.scripts import scripted


def _responses(texts):
    return pd.DataFrame(
        {"prompt_id": ["p1", "p2", "p3"], "instruction": ["Q1", "Q2", "Q3"], "response": texts, "status": "ok"}
    )


CHALLENGER = _responses(["GOOD answer", "plain answer", "plain answer"])
REFERENCE = _responses(["plain answer", "another plain one", "GOOD answer"])


@pytest.fixture
def judge(tiny_model_dir) -> CheckpointHandle:
    return CheckpointHandle(path=str(tiny_model_dir), metadata={"role": "aligned", "model_id": "judge-model"})


PASSED = {"judge": "judge-model", "passed": True, "reason": None}
NLL = pd.DataFrame(
    {
        "prompt_id": ["p1", "p2", "p3"],
        "reference_tokens": [10, 10, 10],
        "reference_nll": [20.0, 20.0, 20.0],
        "reference_content_tokens": [9, 9, 9],
        "reference_content_nll": [19.0, 19.0, 19.0],
        "status": "ok",
    }
)
PREFERENCES = pd.DataFrame(
    {
        "prompt_id": ["r1", "r2", "r3", "r4"],
        "chosen_nll_per_token": [1.0, 1.0, 3.0, 2.0],
        "rejected_nll_per_token": [3.0, 1.5, 1.0, 2.0],
        "prefers_chosen": [1.0, 1.0, 0.0, 0.5],
    }
)
UNTAGGED_NLL = NLL.assign(reference_nll=math.nan, status="untagged")


def test_a_judge_that_tells_answers_apart_passes_its_controls(judge):
    controls = nodes.judge_controls(HELDOUT_PAIRS, judge, scripted("RelevanceJudge"), params("evaluation"), NO_SHARDS)
    assert controls["correct_first"].tolist() == [True] * 4 and controls["correct_second"].tolist() == [True] * 4
    check = nodes.summarise_judge_controls(controls, judge, params("evaluation"))
    assert (check["control_accuracy"], check["order_consistency"], check["passed"]) == (1.0, 1.0, True)
    assert check["control_accuracy_ci_low"] == 1.0  # every prompt right in both orders: every resample too


def test_the_judges_accuracy_interval_resamples_prompts_not_verdicts(judge):
    """Right in both orders on three prompts, wrong in both on the fourth: 6 of 8 verdicts, but only
    4 independent prompts. A Wilson interval on 8 verdicts (lower bound 0.41) overstates what 4 show."""
    controls = pd.DataFrame(
        {
            "correct_first": [True, True, True, False],
            "correct_second": [True, True, True, False],
            "consistent": [True] * 4,
            "first_verdict": ["first"] * 4,
        }
    )
    check = nodes.summarise_judge_controls(controls, judge, params("evaluation"))
    assert check["control_accuracy"] == 0.75 and check["control_accuracy_ci_low"] <= 0.25


def test_a_judge_that_always_says_first_fails_its_controls_and_win_rates_are_inconclusive(judge):
    controls = nodes.judge_controls(HELDOUT_PAIRS, judge, scripted("FirstAnswerJudge"), params("evaluation"), NO_SHARDS)
    assert controls["correct_first"].all() and not controls["correct_second"].any() and not controls["consistent"].any()
    check = nodes.summarise_judge_controls(controls, judge, params("evaluation"))
    assert (check["control_accuracy"], check["order_consistency"], check["passed"]) == (0.5, 0.0, False)
    assert check["reason"] == "control accuracy 0.50 < 0.75; order consistency 0.00 < 0.60"
    assert [row["passed"] for row in check["rows"]] == [False, False, None]

    judgements = nodes.judge_pairs(
        _responses(["GOOD"] * 3), REFERENCE, judge, scripted("Judge"), params("evaluation"), NO_SHARDS
    )
    summary = nodes.summarise_comparison(
        "m1", "m0", judgements, check, NLL, NLL, PREFERENCES, PREFERENCES, params("evaluation")
    )
    assert math.isnan(summary["win_rate"]) and summary["wins"] == 2  # counted, but no rate is claimed
    assert summary["win_rate_status"].startswith("inconclusive: judge failed its controls (control accuracy 0.50")
    card = nodes.update_model_card(CheckpointHandle(path="m1", metadata=METADATA), {"model": "m1"}, check, summary)
    assert "Win rate vs m0 (judge `judge-model`, both orders, ties half): inconclusive" in card
    # the card shows why: the judge's controls, each with its verdict
    assert "| judge (judge-model) | picks the human answer over another prompt's | 0.500 |" in card
    assert ModelCard(card).data.eval_results is None  # an inconclusive win rate is no result
    assert card.count("**failed**") == 2


def test_prompts_the_judge_could_not_judge_are_counted_not_scored(judge):
    judgements = nodes.judge_pairs(
        CHALLENGER, REFERENCE, judge, scripted("SilentJudge"), params("evaluation"), NO_SHARDS
    )
    assert judgements["outcome"].tolist() == ["not_judged"] * 3 and judgements["score"].isna().all()
    controls = nodes.judge_controls(HELDOUT_PAIRS, judge, scripted("SilentJudge"), params("evaluation"), NO_SHARDS)
    assert controls[["correct_first", "correct_second", "consistent"]].isna().all().all()
    check = nodes.summarise_judge_controls(controls, judge, params("evaluation"))
    assert math.isnan(check["control_accuracy"]) and not check["passed"]


def test_nll_difference_is_paired_over_prompts():
    better = NLL.assign(reference_nll=[10.0, 15.0, 18.0])  # 43 / 30 tokens per token, against 60 / 30
    result = nodes.nll_difference(better, NLL, samples=500, seed=0)
    assert result["nll_difference"] == pytest.approx(43 / 30 - 2)
    # better on every prompt (by 1.0, 0.5 and 0.2 nats per token): every resample is negative
    assert -1.0 <= result["nll_difference_ci_low"] <= 43 / 30 - 2 <= result["nll_difference_ci_high"] <= -0.2 + 1e-9
    same = nodes.nll_difference(NLL, NLL, samples=100, seed=0)
    assert (same["nll_difference"], same["nll_difference_ci_low"], same["nll_difference_ci_high"]) == (0.0, 0.0, 0.0)


def test_a_judges_preference_shows_in_the_win_rate(judge):
    """A judge that prefers GOOD answers wherever they are shown: one win, one tie, one loss."""
    judgements = nodes.judge_pairs(CHALLENGER, REFERENCE, judge, scripted("Judge"), params("evaluation"), NO_SHARDS)

    assert judgements["prompt_id"].tolist() == ["p1", "p2", "p3"]
    assert judgements["challenger_first_verdict"].tolist() == ["first", "tie", "second"]
    assert judgements["challenger_second_verdict"].tolist() == ["second", "tie", "first"]
    assert judgements["outcome"].tolist() == ["win", "tie", "loss"]
    np.testing.assert_allclose(judgements["challenger_first_p_1"], [0.8, 0.1, 0.1])
    summary = nodes.summarise_comparison(
        "m1", "m0", judgements, PASSED, NLL, NLL, PREFERENCES, PREFERENCES, params("evaluation")
    )
    assert (summary["wins"], summary["ties"], summary["losses"], summary["win_rate"]) == (1, 1, 1, 0.5)
    assert summary["first_position_rate"] == pytest.approx(0.5) and summary["win_rate_status"] == "ok"

    all_good = nodes.judge_pairs(
        _responses(["GOOD"] * 3),
        REFERENCE.assign(response="plain"),
        judge,
        scripted("Judge"),
        params("evaluation"),
        NO_SHARDS,
    )
    assert (
        nodes.summarise_comparison(
            "m1", "m0", all_good, PASSED, NLL, NLL, PREFERENCES, PREFERENCES, params("evaluation")
        )["win_rate"]
        == 1.0
    )


def test_swapping_the_order_cancels_position_bias(judge):
    """A judge that always picks the first answer: every prompt is a tie in both orders, a win in one."""
    both = nodes.judge_pairs(
        CHALLENGER, REFERENCE, judge, scripted("FirstAnswerJudge"), params("evaluation"), NO_SHARDS
    )
    assert both["outcome"].tolist() == ["tie"] * 3
    summary = nodes.summarise_comparison(
        "m1", "m0", both, PASSED, NLL, NLL, PREFERENCES, PREFERENCES, params("evaluation")
    )
    assert summary["first_position_rate"] == 1.0

    one_order = nodes.judge_pairs(
        CHALLENGER,
        REFERENCE,
        judge,
        scripted("FirstAnswerJudge"),
        params("evaluation", judge={"both_orders": False}),
        NO_SHARDS,
    )
    assert "challenger_second_verdict" not in one_order
    assert one_order["outcome"].tolist() == ["win"] * 3  # the bias is no longer cancelled


def test_reference_nll_is_the_teacher_forced_sum(tiny_model_dir):
    """-1 nat per token for GOOD references, -3 otherwise (the scripted rule), over every answer token."""
    heldout = pd.DataFrame(
        {"prompt_id": ["a", "b"], "instruction": ["Q1", "Q2"], "reference": ["GOOD answer.", "Bad."]}
    )
    model = CheckpointHandle(str(tiny_model_dir), {"hyperparameters": {"use_tags": True, "direction": "forward"}})
    nll = nodes.score_references(heldout, model, scripted("ReferenceScorer"), NO_SHARDS)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokens = [len(tokenizer.encode(text, add_special_tokens=False)) + 1 for text in heldout["reference"]]  # + the eos
    assert nll["reference_tokens"].tolist() == tokens and (nll["status"] == "ok").all()
    assert nll["reference_nll"].tolist() == pytest.approx([1.0 * tokens[0], 3.0 * tokens[1]])
    # without the end token: one token fewer, and its log-probability left out
    assert nll["reference_content_tokens"].tolist() == [n - 1 for n in tokens]
    assert nll["reference_content_nll"].tolist() == pytest.approx([1.0 * (tokens[0] - 1), 3.0 * (tokens[1] - 1)])


def test_tagged_models_are_also_scored_under_the_web_tag(tiny_model_dir):
    heldout = pd.DataFrame({"prompt_id": ["a"], "instruction": ["Q1"], "reference": ["GOOD answer."]})
    tagged = CheckpointHandle(str(tiny_model_dir), {"hyperparameters": {"use_tags": True, "direction": "forward"}})
    web = nodes.score_references_under_web_tag(heldout, tagged, scripted("ReferenceScorer"), NO_SHARDS)
    assistant = nodes.score_references(heldout, tagged, scripted("ReferenceScorer"), NO_SHARDS)
    assert (
        web["status"].tolist() == ["ok"] and web["reference_tokens"].tolist() == assistant["reference_tokens"].tolist()
    )
    untagged = nodes.score_references_under_web_tag(heldout, CheckpointHandle(str(tiny_model_dir)), None, NO_SHARDS)
    assert untagged["status"].tolist() == ["untagged"] and untagged["reference_nll"].isna().all()


def test_preference_follows_the_per_token_likelihood_of_the_two_replies(tiny_model_dir):
    """The scripted scorer gives GOOD replies -1 nat a token and others -3: a model with that taste
    prefers the better reply where it is GOOD, and the worse one where that one is."""
    ranked = pd.DataFrame(
        {
            "prompt_id": ["r1", "r2", "r3", "r4"],
            "instruction": ["Q1", "Q2", "Q3", "Q4"],
            "chosen": ["GOOD answer.", "GOOD and long answer with many words.", "Plain.", "Plain too."],
            "rejected": ["Bad.", "No.", "GOOD answer.", "Also plain."],
            "source": "oasst1",
        }
    )
    model = CheckpointHandle(str(tiny_model_dir))
    preferences = nodes.score_preferences(ranked, model, scripted("ReferenceScorer"), NO_SHARDS)
    assert preferences["prefers_chosen"].tolist() == [1.0, 1.0, 0.0, 0.5]  # per token: length does not decide
    accuracy = statistics.preference_accuracy(preferences, samples=500, seed=0)
    assert accuracy["preference_accuracy"] == pytest.approx(0.625) and accuracy["preference_prompts"] == 4
    assert 0 <= accuracy["preference_ci_low"] < 0.625 < accuracy["preference_ci_high"] <= 1
    # the margin, worse reply's NLL per token minus the better one's: 2, 2, -2, 0
    assert accuracy["preference_margin"] == pytest.approx(0.5)
    assert accuracy["preference_margin_ci_low"] < 0.5 < accuracy["preference_margin_ci_high"]


def test_preference_difference_is_paired_over_prompts():
    better = PREFERENCES.assign(prefers_chosen=[1.0, 1.0, 1.0, 1.0])
    result = statistics.preference_difference(better, PREFERENCES, samples=500, seed=0)
    assert result["preference_difference"] == pytest.approx(1 - 2.5 / 4)
    assert result["preference_difference_ci_low"] >= 0  # never worse on any prompt: no resample below 0
    same = statistics.preference_difference(PREFERENCES, PREFERENCES, samples=100, seed=0)
    assert (same["preference_difference"], same["preference_difference_ci_high"]) == (0.0, 0.0)
    assert (same["preference_margin_difference"], same["preference_margin_difference_ci_high"]) == (0.0, 0.0)


def test_the_preference_margin_sees_a_surer_model_whose_verdicts_are_the_same():
    surer = PREFERENCES.assign(rejected_nll_per_token=PREFERENCES["rejected_nll_per_token"] + [0.5, 0.5, -0.5, 0.0])
    result = statistics.preference_difference(surer, PREFERENCES, samples=500, seed=0)
    assert result["preference_difference"] == 0.0
    assert result["preference_margin_difference"] == pytest.approx((0.5 + 0.5 - 0.5) / 4)
    # a prompt scored by one model only is left out of both
    unscored = PREFERENCES.assign(prefers_chosen=[1.0, 1.0, 0.0, math.nan])
    assert statistics.preference_difference(unscored, surer, samples=10, seed=0)[
        "preference_margin_difference"
    ] == pytest.approx(-(0.5 + 0.5 - 0.5) / 3)


METADATA = {
    "role": "m1",
    "base_model": "google/gemma-3-270m",
    "base_model_licence": "Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    "prompt_format": "project",
    "answer_end_tokens": ["<eos>"],
    "training": {
        "examples": 189,
        "composition": {"seed": 178, "augmented": 11},
        "steps": 48,
        "epochs": 2.0,
        "train_loss": 1.92,
        "heldout_loss_before": 2.623,
        "heldout_loss_after": 2.219,
        "heldout_examples": 8,
        "overlong_truncated": 74,
    },
    "hyperparameters": {
        "method": "full",
        "learning_rate": 5e-05,
        "batch_size": 8,
        "max_length": 320,
        "direction": "forward",
        "use_tags": True,
        "heldout_examples": 8,
        "weight_decay": 0.0,
        "precision": "bf16_mixed",
    },
    "curation": {
        "rater": "seed",
        "scorer": "option_probabilities",
        "few_shot": 2,
        "rewriting_mode": "off",
        "rewriting_model": None,
        "documents": 522,
        "candidates": 490,
        "method": "threshold",
        "threshold": 4,
        "top_fraction": None,
        "rated": 490,
        "kept": 11,
    },
}


JUDGE_PASSED = health.verdict(
    [
        health.criterion(
            "judge (aligned)",
            "picks the human answer over another prompt's",
            0.9,
            low=0.8,
            high=0.95,
            threshold="≥ 0.75",
            passed=True,
            failure="",
        )
    ]
)


def test_model_card_has_the_hub_metadata_and_the_run_facts():
    card = render_model_card(METADATA)
    _, front, body = card.split("---", 2)
    header = yaml.safe_load(front)
    assert header["base_model"] == "google/gemma-3-270m"
    assert header["datasets"] == ["OpenAssistant/oasst1", "allenai/c4"]
    assert header["library_name"] == "transformers" and "instruction-backtranslation" in header["tags"]
    assert "# M1" in body
    assert "189 (seed: 178, augmented: 11)" in body
    assert "licence: Gemma Terms of Use" in body and "`### User:` / `### Assistant:`" in body and "`<eos>`" in body
    assert "held-out seed pairs 2.623 before → 2.219 after" in body and "(2.000 epochs)" in body
    assert "| precision | bf16_mixed |" in body
    assert "score ≥ 4" in body and "522 web documents → 490 candidate pairs → 490 rated → 11 kept" in body
    assert "| learning_rate | 5e-05 |" in body
    assert "- transformers: " in body and "- trl: " in body
    for citation in ("li2023selfalignment", "nguyen2024better", "vonwerra2022trl"):
        assert citation in body
    assert "Not evaluated yet" in body


def test_model_card_shows_evaluation_figures():
    summary = {"model": "m1", "prompts": 32, "reference_nll": 2.1234, "reference_perplexity": 8.36}
    summary |= {"preference_prompts": 119, "preference_accuracy": 0.7, "preference_ci_low": 0.62}
    summary |= {"preference_ci_high": 0.78, "preference_margin": 0.5, "preference_margin_ci_low": 0.4}
    summary |= {"preference_margin_ci_high": 0.6}
    comparisons = [
        {
            "challenger": "m1",
            "reference": "m0",
            "judge": "base",
            "win_rate": 0.55,
            "ci_low": 0.4,
            "ci_high": 0.7,
            "wins": 10,
            "ties": 12,
            "losses": 10,
            "preference_difference": 0.0,
            "preference_difference_ci_low": -0.02,
            "preference_difference_ci_high": 0.02,
            "preference_margin_difference": 0.01,
            "preference_margin_difference_ci_low": -0.005,
            "preference_margin_difference_ci_high": 0.02,
        },
        {
            "challenger": "m2",
            "reference": "m1",
            "judge": "base",
            "win_rate": 0.5,
            "ci_low": 0.3,
            "ci_high": 0.7,
            "wins": 1,
            "ties": 1,
            "losses": 1,
        },
    ]
    card = nodes.update_model_card(CheckpointHandle(path="m1", metadata=METADATA), summary, JUDGE_PASSED, *comparisons)
    assert "held-out" in card.lower() and "2.123" in card and "(perplexity 8.360)" in card
    assert "Win rate vs m0" in card and "0.550 [0.400, 0.700]" in card
    assert "vs m1" not in card  # another model's comparison stays off this card
    assert "0.700 [0.620, 0.780]; by a mean margin of 0.500 nats per token [0.400, 0.600]" in card
    assert "0.000 [-0.020, 0.020]; its margin minus theirs 0.010 [-0.005, 0.020]" in card
    # the Hub's model-index, as huggingface_hub reads it back
    results = ModelCard(card).data.eval_results
    assert [(r.metric_type, r.metric_value) for r in results] == [
        ("loss", 2.1234),
        ("perplexity", 8.36),
        ("accuracy", 0.7),
        ("win_rate", 0.55),
    ]
    assert results[3].metric_name == "Win rate vs m0 (judge base)" and results[0].dataset_type == "OpenAssistant/oasst1"
    assert (
        "| judge (aligned) | picks the human answer over another prompt's | 0.900 | [0.800, 0.950] | ≥ 0.75 | passed |"
        in card
    )


def test_a_randomly_selected_model_says_so_and_leaves_out_the_curator_it_did_not_use():
    random = METADATA | {
        "curation": METADATA["curation"] | {"method": "random", "seed": 0, "kept": 11, "curator_check": CURATOR}
    }
    card = render_model_card(random)
    assert "# M1 (random selection)" in card and "11 drawn at random (seed 0), as many as curation kept" in card
    assert "curator (seed)" not in card  # the curator chose nothing for this model
    assert ModelCard(card).data.model_name == "humpback-m1-random-selection"
    curated = render_model_card(METADATA | {"curation": METADATA["curation"] | {"curator_check": CURATOR}})
    assert (
        "| curator (seed) | ROC AUC human vs mismatched pairs | 0.490 | [0.340, 0.630] | ≥ 0.7 | **failed** |"
        in curated
    )


def test_model_summary_is_token_weighted():
    nll = pd.DataFrame(
        {
            "prompt_id": ["a", "b", "c"],
            "reference_tokens": [10, 30, 0],
            "reference_nll": [20.0, 30.0, math.nan],
            "reference_content_tokens": [9, 29, 0],
            "reference_content_nll": [19.0, 24.0, math.nan],
            "status": ["ok", "ok", "prompt_too_long"],
        }
    )
    responses = _responses(["x" * 10, "y" * 20, ""])
    model = CheckpointHandle(path="m0", metadata={"role": "seed"})
    summary = summarise(model, nll, responses)
    assert summary["reference_nll"] == pytest.approx(50 / 40) and summary["reference_tokens"] == 40
    assert summary["not_scored"] == 1 and summary["reference_perplexity"] == pytest.approx(math.exp(1.25))
    assert summary["reference_nll_without_end"] == pytest.approx(43 / 38)
    assert math.isnan(summary["reference_nll_web_tag"])  # an untagged model has no web-tag figure
    assert summary["preference_accuracy"] == pytest.approx(2.5 / 4) and summary["preference_prompts"] == 4


#: a detector that reads links as web style and "I" as an assistant's
LINKS_ARE_WEB = WebStyleDetector(log_ratios={"<url>": 2.0, "i": -1.0}, window_chars=500).to_dict()


def summarise(model, nll, responses):
    return nodes.summarise_model(
        "m", model, nll, UNTAGGED_NLL, PREFERENCES, responses, LINKS_ARE_WEB, params("evaluation")
    )


def test_the_summary_says_how_answers_end_and_how_much_they_repeat():
    nll = NLL.head(1)
    responses = _responses(
        ["Tides follow the moon.", "and and and and and and and and", "Boil it for ten minutes, then cool it."]
    ).assign(truncated=[False, True, False])
    summary = summarise(CheckpointHandle(path="m1"), nll, responses)
    assert summary["stop_rate"] == pytest.approx(2 / 3)
    assert summary["stop_rate_ci_low"] < 2 / 3 < summary["stop_rate_ci_high"]
    assert summary["repeated_4gram_share"] == pytest.approx((0 + 4 / 5 + 0) / 3)  # 5 four-grams, 1 distinct
    old = summarise(CheckpointHandle(path="m1"), nll, _responses(["a", "b", "c"]))
    assert math.isnan(old["stop_rate"])  # saved before generations said whether they were cut: unknown


def test_answers_are_exported_for_alpaca_eval():
    responses = _responses(["Tides follow the moon.", "", "Boil it."]).assign(status=["ok", "prompt_too_long", "ok"])
    outputs = nodes.alpaca_eval_outputs("m1", responses)
    assert outputs == [
        {"instruction": "Q1", "output": "Tides follow the moon.", "generator": "humpback-m1"},
        {"instruction": "Q3", "output": "Boil it.", "generator": "humpback-m1"},
    ]
