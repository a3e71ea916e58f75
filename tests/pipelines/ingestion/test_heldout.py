"""Held-out pairs: built beside the seed pairs, never from a tree the seed data uses."""

import pandas as pd
import pytest

from humpback.pipelines.ingestion.nodes import build_heldout_pairs, build_seed_pairs
from tests.conftest import params

PARTS = params("ingestion.parts")


def test_heldout_pairs_never_share_a_tree_with_the_seed(oasst1_messages):
    messages = oasst1_messages
    seed_params = params("ingestion.seed", max_pairs=None, heldout_fraction=0.2)
    seed, funnel, reserve = build_seed_pairs(messages, seed_params)
    heldout = build_heldout_pairs(
        messages, seed, reserve, seed_params, params("ingestion.heldout", max_prompts=None, split="train"), PARTS
    )

    held_out_count = funnel.loc[funnel["rule"] == "held_out_for_evaluation", "dropped"].sum()
    assert held_out_count == len(heldout) > 0  # the slice kept out of the seed is exactly the held-out set
    assert len(seed) + len(heldout) == 186  # all first-turn pairs of the sample, split in two
    assert not set(heldout["prompt_id"]) & set(seed["prompt_message_id"])
    assert heldout.columns.tolist() == ["prompt_id", "instruction", "reference", "part"]
    assert heldout["reference"].str.len().min() > 0
    capped = build_heldout_pairs(
        messages, seed, reserve, seed_params, params("ingestion.heldout", max_prompts=5, split="train"), PARTS
    )
    for part in ("selection", "report"):  # the cap holds in each part, in the same order
        assert (
            capped.loc[capped["part"] == part, "prompt_id"].tolist()
            == (heldout.loc[heldout["part"] == part, "prompt_id"].tolist()[:5])
        )


def test_heldout_pairs_refuse_an_evaluation_set_that_is_all_seed(oasst1_messages):
    messages = oasst1_messages
    seed_params = params("ingestion.seed", max_pairs=None, heldout_fraction=0.0)
    seed, _, reserve = build_seed_pairs(messages, seed_params)
    with pytest.raises(ValueError, match="heldout_fraction"):
        build_heldout_pairs(messages, seed, reserve, seed_params, params("ingestion.heldout", split="train"), PARTS)


def test_the_reserve_is_neither_evaluated_nor_ranked(oasst1_messages):
    """The reserve holds the trainings' held-out loss: an evaluation prompt among it would be
    decontaminated out of that set (the offline default lost all 8 that way)."""
    from humpback.pipelines.ingestion.nodes import build_ranked_pairs

    seed_params = params("ingestion.seed", env="offline")
    assert seed_params.reserve_pairs == 8
    seed, _, reserve = build_seed_pairs(oasst1_messages, seed_params)
    heldout = build_heldout_pairs(
        oasst1_messages, seed, reserve, seed_params, params("ingestion.heldout", env="offline", split="train"), PARTS
    )
    ranked = build_ranked_pairs(
        oasst1_messages, [], seed, reserve, seed_params, params("ingestion.ranked", env="offline", split="train"), PARTS
    )
    assert len(reserve) == 8 and len(heldout) > 0 and len(ranked) > 0
    reserve_trees = set(reserve["message_tree_id"])
    assert not reserve_trees & set(
        oasst1_messages.loc[oasst1_messages["message_id"].isin(heldout["prompt_id"]), "message_tree_id"]
    )
    assert not ranked["prompt_id"].isin(reserve["prompt_message_id"]).any()


def test_controls_and_evaluation_get_disjoint_trees_and_a_ranked_prompt_follows_its_tree(oasst1_messages):
    """The controls choose on the selection part, the evaluation reports on the other: no tree (its
    first turn, its ranked replies) is on both sides, and a tree keeps its side whatever other
    trees the run holds."""
    from humpback.data.parts import tree_parts
    from humpback.pipelines.ingestion.nodes import build_ranked_pairs, split_prompt_parts

    seed_params = params("ingestion.seed", env="offline")
    seed, _, reserve = build_seed_pairs(oasst1_messages, seed_params)
    heldout = build_heldout_pairs(
        oasst1_messages, seed, reserve, seed_params, params("ingestion.heldout", env="offline", split="train"), PARTS
    )
    ranked = build_ranked_pairs(
        oasst1_messages, [], seed, reserve, seed_params, params("ingestion.ranked", env="offline", split="train"), PARTS
    )
    selection, report, selection_ranked, report_ranked = split_prompt_parts(heldout, ranked)
    assert len(selection) == len(report) == 32  # offline: 32 in each part
    assert 0.3 < len(report_ranked) / len(ranked) < 0.7 and len(selection_ranked) + len(report_ranked) == len(ranked)
    trees = oasst1_messages.set_index("message_id")["message_tree_id"]
    chosen = set(trees[selection["prompt_id"]]) | set(trees[selection_ranked["prompt_id"]])
    reported = set(trees[report["prompt_id"]]) | set(trees[report_ranked["prompt_id"]])
    assert chosen and reported and not chosen & reported
    in_both = heldout.merge(ranked, on="prompt_id", suffixes=("_heldout", "_ranked"))
    assert len(in_both) > 10 and (in_both["part_heldout"] == in_both["part_ranked"]).all()
    ids = heldout["prompt_id"]
    assert (tree_parts(ids, 0.5, 42).iloc[5:].tolist()) == tree_parts(ids.iloc[5:], 0.5, 42).tolist()
    assert tree_parts(ids, 0.5, 42).tolist() != tree_parts(ids, 0.5, 43).tolist()


def test_a_part_too_small_for_its_controls_is_refused(oasst1_messages):
    from humpback.pipelines.ingestion.nodes import split_prompt_parts

    seed_params = params("ingestion.seed", env="offline")
    seed, _, reserve = build_seed_pairs(oasst1_messages, seed_params)
    heldout = build_heldout_pairs(
        oasst1_messages, seed, reserve, seed_params, params("ingestion.heldout", env="offline", split="train"), PARTS
    )
    with pytest.raises(ValueError, match="the report part has 1 held-out prompt"):
        split_prompt_parts(
            pd.concat([heldout.loc[heldout["part"] == "selection"], heldout.loc[heldout["part"] == "report"].head(1)]),
            heldout.iloc[:0].assign(chosen="", rejected=""),
        )
