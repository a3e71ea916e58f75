"""Ranked-reply pairs for the preference accuracy: real oasst1 held-out trees and OpenAssistant's
nested-tree export, with nothing the models train on."""

import pandas as pd
import pytest

from humpback.data.oasst import flatten_trees
from humpback.pipelines.ingestion.nodes import build_ranked_pairs, build_seed_pairs
from tests.conftest import params


@pytest.fixture(scope="module")
def export_trees(shared_data) -> pd.DataFrame:
    return pd.read_json(shared_data / "oasst_export_en_100_trees.jsonl.gz", lines=True, compression="gzip")


@pytest.fixture(scope="module")
def seed(oasst1_messages):
    pairs, _, _ = build_seed_pairs(oasst1_messages, params("ingestion.seed", env="offline"))
    return pairs


def test_nested_trees_flatten_to_the_hubs_message_records(export_trees):
    messages = flatten_trees(export_trees)
    assert len(messages) == 1167 and messages["message_id"].is_unique  # SOURCES.md: 100 trees, 1,167 messages
    roots = messages["parent_id"].isna()
    assert roots.sum() == 100 and (messages.loc[roots, "role"] == "prompter").all()
    assert messages.loc[~roots, "parent_id"].isin(set(messages["message_id"])).all()


def test_ranked_pairs_take_the_best_and_worst_reply_of_prompts_no_model_trains_on(oasst1_messages, export_trees, seed):
    ranked = build_ranked_pairs(
        oasst1_messages,
        export_trees,
        seed,
        seed.head(0),
        params("ingestion.seed", env="offline"),
        params("ingestion.ranked", env="offline"),
        params("ingestion.parts"),
    )
    counts = ranked["source"].value_counts().to_dict()
    assert counts["oasst1"] >= 25 and counts["oasst_export"] >= 80  # ~4 times the held-out prompts alone
    assert (ranked["chosen_rank"] == 0).all() and (ranked["rejected_rank"] > 0).all() and (ranked["replies"] >= 2).all()
    assert not ranked["prompt_id"].isin(seed["prompt_message_id"]).any()
    assert not ranked["instruction"].str.lower().isin(set(seed["instruction"].str.lower())).any()
    assert ranked["instruction"].str.lower().is_unique and (ranked["chosen"] != ranked["rejected"]).all()
    synthetic = flatten_trees(export_trees).query("synthetic == True")["message_id"]
    assert not ranked["prompt_id"].isin(set(synthetic)).any()


def test_without_the_export_the_held_out_trees_alone_are_used(oasst1_messages, seed):
    ranked = build_ranked_pairs(
        oasst1_messages,
        [],
        seed,
        seed.head(0),
        params("ingestion.seed", env="offline"),
        params("ingestion.ranked", env="offline"),
        params("ingestion.parts"),
    )
    assert set(ranked["source"]) == {"oasst1"} and len(ranked) >= 25
