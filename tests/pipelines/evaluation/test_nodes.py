"""Evaluation nodes on real data shapes: held-out prompts, order-swapped judging, summaries, cards."""

import math

import numpy as np
import pandas as pd
import pytest
import yaml

from humpback import execution
from humpback.datasets import CheckpointHandle
from humpback.model_card import render_model_card
from humpback.params import SeedParams
from humpback.pipelines.evaluation import nodes
from humpback.pipelines.ingestion.nodes import build_seed_pairs


def test_heldout_pairs_never_share_a_tree_with_the_seed(oasst1_messages):
    messages = oasst1_messages
    seed_params = SeedParams(heldout_fraction=0.2).model_dump()
    seed, funnel = build_seed_pairs(messages, seed_params)
    heldout = nodes.build_heldout_pairs(messages, seed, seed_params, {"max_prompts": None})

    held_out_count = funnel.loc[funnel["rule"] == "held_out_for_evaluation", "dropped"].sum()
    assert held_out_count == len(heldout) > 0  # the slice kept out of the seed is exactly the held-out set
    assert len(seed) + len(heldout) == 186  # all first-turn pairs of the sample, split in two
    assert not set(heldout["prompt_id"]) & set(seed["prompt_message_id"])
    assert heldout.columns.tolist() == ["prompt_id", "instruction", "reference"]
    assert heldout["reference"].str.len().min() > 0
    capped = nodes.build_heldout_pairs(messages, seed, seed_params, {"max_prompts": 5})
    assert capped["prompt_id"].tolist() == heldout["prompt_id"].tolist()[:5]


def test_heldout_pairs_refuse_an_evaluation_set_that_is_all_seed(oasst1_messages):
    messages = oasst1_messages
    seed, _ = build_seed_pairs(messages, SeedParams().model_dump())
    with pytest.raises(ValueError, match="heldout_fraction"):
        nodes.build_heldout_pairs(messages, seed, SeedParams().model_dump(), {})


class PositionBiasedJudge:
    """Prefers an answer containing GOOD wherever it is shown; otherwise always the first answer."""

    def __init__(self, config, path):
        self.prompts = []

    def get(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        pass

    def score_options_where_fits(self, prompts, options):
        assert options == ["1", "2", "0"]
        rows = []
        for chat in prompts:
            self.prompts.append(chat)
            first, second = chat[-1]["content"].split("Second answer:")
            rows.append([0.8, 0.1, 0.1] if "GOOD" in first else [0.1, 0.8, 0.1] if "GOOD" in second else [0.6, 0.3, 0.1])
        return np.array(rows)


def _responses(texts):
    return pd.DataFrame({"prompt_id": ["p1", "p2", "p3"], "instruction": ["Q1", "Q2", "Q3"], "response": texts, "status": "ok"})


def test_judging_swaps_the_order_and_cancels_position_bias(monkeypatch):
    monkeypatch.setattr(execution, "LazyLanguageModel", PositionBiasedJudge)
    challenger = _responses(["GOOD answer", "plain answer", "plain answer"])
    reference = _responses(["plain answer", "another plain one", "GOOD answer"])
    judge = CheckpointHandle(path="judge", metadata={"role": "base", "model_id": "judge-model"})
    params = {"judge": {"both_orders": True}}
    generation = {"shard_dir": None}
    judgements = nodes.judge_pairs(challenger, reference, judge, {}, params, generation)

    assert judgements["challenger_first_verdict"].tolist() == ["first", "first", "second"]
    assert judgements["challenger_second_verdict"].tolist() == ["second", "first", "first"]
    assert judgements["outcome"].tolist() == ["win", "tie", "loss"]
    summary = nodes.summarise_comparison("m1", "m0", judgements, judge, params)
    assert (summary["wins"], summary["ties"], summary["losses"], summary["win_rate"]) == (1, 1, 1, 0.5)
    assert summary["first_position_rate"] == pytest.approx(4 / 6) and summary["judge"] == "judge-model"

    one_order = nodes.judge_pairs(challenger, reference, judge, {}, {"judge": {"both_orders": False}}, generation)
    assert "challenger_second_verdict" not in one_order
    assert one_order["outcome"].tolist() == ["win", "win", "loss"]  # the bias is no longer cancelled


METADATA = {
    "role": "m1",
    "base_model": "google/gemma-3-270m",
    "base_model_licence": "Gemma Terms of Use (https://ai.google.dev/gemma/terms)",
    "prompt_format": "project",
    "answer_end_tokens": ["<eos>"],
    "training": {"examples": 189, "composition": {"seed": 178, "augmented": 11}, "steps": 48, "epochs": 2.0, "train_loss": 1.92,
                 "heldout_loss_before": 2.623, "heldout_loss_after": 2.219, "heldout_examples": 8, "overlong_truncated": 74},
    "hyperparameters": {"method": "full", "learning_rate": 5e-05, "batch_size": 8, "max_length": 320, "direction": "forward",
                        "use_tags": True, "heldout_examples": 8, "weight_decay": 0.0, "precision": "bf16_mixed"},
    "curation": {"rater": "seed", "scorer": "option_probabilities", "few_shot": 2, "rewriting_mode": "off",
                 "rewriting_model": None, "documents": 522, "candidates": 490, "method": "threshold", "threshold": 4,
                 "top_fraction": None, "rated": 490, "kept": 11},
}


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
    comparisons = [
        {"challenger": "m1", "reference": "m0", "judge": "base", "win_rate": 0.55, "ci_low": 0.4, "ci_high": 0.7,
         "wins": 10, "ties": 12, "losses": 10},
        {"challenger": "m2", "reference": "m1", "judge": "base", "win_rate": 0.5, "ci_low": 0.3, "ci_high": 0.7,
         "wins": 1, "ties": 1, "losses": 1},
    ]
    card = nodes.update_model_card(CheckpointHandle(path="m1", metadata=METADATA), summary, *comparisons)
    assert "held-out" in card.lower() and "2.123" in card and "(perplexity 8.360)" in card
    assert "Win rate vs m0" in card and "0.550 [0.400, 0.700]" in card
    assert "vs m1" not in card  # another model's comparison stays off this card


def test_model_summary_is_token_weighted():
    nll = pd.DataFrame({"prompt_id": ["a", "b", "c"], "reference_tokens": [10, 30, 0],
                        "reference_nll": [20.0, 30.0, math.nan], "status": ["ok", "ok", "prompt_too_long"]})
    responses = _responses(["x" * 10, "y" * 20, ""])
    summary = nodes.summarise_model("m0", CheckpointHandle(path="m0", metadata={"role": "seed"}), nll, responses)
    assert summary["reference_nll"] == pytest.approx(50 / 40) and summary["reference_tokens"] == 40
    assert summary["not_scored"] == 1 and summary["reference_perplexity"] == pytest.approx(math.exp(1.25))
