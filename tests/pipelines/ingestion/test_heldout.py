"""Held-out pairs: built beside the seed pairs, never from a tree the seed data uses."""

import pytest

from humpback.pipelines.ingestion.nodes import build_heldout_pairs, build_seed_pairs
from tests.conftest import params


def test_heldout_pairs_never_share_a_tree_with_the_seed(oasst1_messages):
    messages = oasst1_messages
    seed_params = params("ingestion.seed", max_pairs=None, heldout_fraction=0.2)
    seed, funnel, reserve = build_seed_pairs(messages, seed_params)
    heldout = build_heldout_pairs(
        messages, seed, reserve, seed_params, params("ingestion.heldout", max_prompts=None, split="train")
    )

    held_out_count = funnel.loc[funnel["rule"] == "held_out_for_evaluation", "dropped"].sum()
    assert held_out_count == len(heldout) > 0  # the slice kept out of the seed is exactly the held-out set
    assert len(seed) + len(heldout) == 186  # all first-turn pairs of the sample, split in two
    assert not set(heldout["prompt_id"]) & set(seed["prompt_message_id"])
    assert heldout.columns.tolist() == ["prompt_id", "instruction", "reference"]
    assert heldout["reference"].str.len().min() > 0
    capped = build_heldout_pairs(
        messages, seed, reserve, seed_params, params("ingestion.heldout", max_prompts=5, split="train")
    )
    assert capped["prompt_id"].tolist() == heldout["prompt_id"].tolist()[:5]


def test_heldout_pairs_refuse_an_evaluation_set_that_is_all_seed(oasst1_messages):
    messages = oasst1_messages
    seed_params = params("ingestion.seed", max_pairs=None, heldout_fraction=0.0)
    seed, _, reserve = build_seed_pairs(messages, seed_params)
    with pytest.raises(ValueError, match="heldout_fraction"):
        build_heldout_pairs(messages, seed, reserve, seed_params, params("ingestion.heldout", split="train"))


def test_the_reserve_is_neither_evaluated_nor_ranked(oasst1_messages):
    """The reserve holds the trainings' held-out loss: an evaluation prompt among it would be
    decontaminated out of that set (the offline default lost all 8 that way)."""
    from humpback.pipelines.ingestion.nodes import build_ranked_pairs

    seed_params = params("ingestion.seed", env="offline")
    assert seed_params.reserve_pairs == 8
    seed, _, reserve = build_seed_pairs(oasst1_messages, seed_params)
    heldout = build_heldout_pairs(
        oasst1_messages, seed, reserve, seed_params, params("ingestion.heldout", env="offline", split="train")
    )
    ranked = build_ranked_pairs(
        oasst1_messages, [], seed, reserve, seed_params, params("ingestion.ranked", env="offline", split="train")
    )
    assert len(reserve) == 8 and len(heldout) > 0 and len(ranked) > 0
    reserve_trees = set(reserve["message_tree_id"])
    assert not reserve_trees & set(
        oasst1_messages.loc[oasst1_messages["message_id"].isin(heldout["prompt_id"]), "message_tree_id"]
    )
    assert not ranked["prompt_id"].isin(reserve["prompt_message_id"]).any()
