import pandas as pd
import pytest

from humpback.data.oasst import SEED_COLUMNS, select_seed_pairs
from humpback.data.records import RawDataError

DEFAULTS = dict(languages=["en"], rank=0, max_text_chars=20_000, drop_synthetic=True, max_pairs=None, sample_seed=42)


def funnel_count(funnel: pd.DataFrame, rule: str) -> int:
    return int(funnel.loc[funnel["rule"] == rule, "dropped"].sum())


def test_real_sample_gives_first_turn_rank0_pairs(oasst1_messages):
    seed, funnel = select_seed_pairs(oasst1_messages, **DEFAULTS)

    assert list(seed.columns) == SEED_COLUMNS
    assert 170 <= len(seed) <= 186  # 186 root→rank-0 pairs before the trust rules
    by_id = oasst1_messages.set_index("message_id")
    replies = by_id.loc[seed["response_message_id"]]
    prompts = by_id.loc[seed["prompt_message_id"]]
    assert (replies["rank"] == 0).all()
    assert (replies["role"] == "assistant").all() and (prompts["role"] == "prompter").all()
    assert prompts["parent_id"].isna().all()
    assert not replies["deleted"].any() and (replies["review_result"] != False).all()  # noqa: E712
    assert seed["instruction"].str.len().gt(0).all() and seed["response"].str.len().gt(0).all()
    assert not seed["prompt_message_id"].duplicated().any()
    orphans = ~oasst1_messages["parent_id"].isna() & ~oasst1_messages["parent_id"].isin(by_id.index)
    assert orphans.sum() == 3  # parents in another language were filtered upstream (SOURCES.md)
    assert not seed["response_message_id"].isin(oasst1_messages.loc[orphans, "message_id"]).any()
    assert funnel["dropped"].sum() > 0 and funnel.iloc[-1]["remaining"] == len(seed)


def test_cap_is_deterministic_and_a_subset(oasst1_messages):
    full, _ = select_seed_pairs(oasst1_messages, **DEFAULTS)
    capped_a, funnel = select_seed_pairs(oasst1_messages, **{**DEFAULTS, "max_pairs": 25})
    capped_b, _ = select_seed_pairs(oasst1_messages.sample(frac=1, random_state=1), **{**DEFAULTS, "max_pairs": 25})

    assert len(capped_a) == 25
    assert capped_a["prompt_message_id"].tolist() == capped_b["prompt_message_id"].tolist()
    assert set(capped_a["prompt_message_id"]) <= set(full["prompt_message_id"])
    assert funnel_count(funnel, "over_max_pairs") == len(full) - 25


def _tree(tree: str, prompt_text="What is a tide?", reply_text="Tides are caused by the moon.", **reply):
    prompt = dict(
        message_id=f"{tree}-p",
        parent_id=None,
        message_tree_id=tree,
        text=prompt_text,
        role="prompter",
        lang="en",
        rank=None,
        deleted=False,
        review_result=True,
        synthetic=False,
    )
    answer = dict(
        message_id=f"{tree}-a",
        parent_id=f"{tree}-p",
        message_tree_id=tree,
        text=reply_text,
        role="assistant",
        lang="en",
        rank=0,
        deleted=False,
        review_result=True,
        synthetic=False,
    )
    answer.update(reply)
    return [prompt, answer]


@pytest.mark.parametrize(
    "reply, rule",
    [
        ({"text": None}, "missing_or_empty_text"),
        ({"text": "   "}, "missing_or_empty_text"),
        ({"text": 42}, "missing_or_empty_text"),
        ({"text": "x" * 30_000}, "text_too_long"),
        ({"lang": "de"}, "other_language"),
        ({"deleted": True}, "deleted"),
        ({"review_result": False}, "rejected_by_review"),
        ({"synthetic": True}, "synthetic"),
        ({"rank": 1}, "rank_not_0"),
        ({"rank": None}, "rank_not_0"),
        ({"parent_id": "missing-parent"}, "orphan_reply"),
    ],
)
def test_bad_replies_are_dropped_and_counted(reply, rule):
    good = _tree("good")
    bad = _tree("bad", prompt_text="Why is the sea salty?", **reply)
    seed, funnel = select_seed_pairs(pd.DataFrame(good + bad), **DEFAULTS)

    assert seed["message_tree_id"].tolist() == ["good"]
    assert funnel_count(funnel, rule) == 1


def test_duplicates_are_dropped_and_counted():
    rows = _tree("a") + _tree("a") + _tree("b")  # a's ids twice; tree b repeats a's instruction
    seed, funnel = select_seed_pairs(pd.DataFrame(rows), **DEFAULTS)

    assert len(seed) == 1
    assert funnel_count(funnel, "duplicate_message_id") == 2
    assert funnel_count(funnel, "duplicate_instruction") == 1


def test_funnel_accounts_for_every_message(oasst1_messages):
    _, funnel = select_seed_pairs(oasst1_messages, **DEFAULTS)
    messages = funnel[funnel["step"] == "messages"]
    assert messages.iloc[0]["remaining"] == len(oasst1_messages)
    dropped_in_order = messages[messages["rule"] != "not_first_turn_message"]["dropped"].sum()
    last_filter = messages[messages["rule"] == "unknown_role"].iloc[0]
    assert len(oasst1_messages) - dropped_in_order == last_filter["remaining"]


def test_missing_columns_is_one_clear_error(oasst1_messages):
    with pytest.raises(RawDataError, match=r"missing column\(s\) \['rank'\]"):
        select_seed_pairs(oasst1_messages.drop(columns="rank"), **DEFAULTS)
