"""A user's own seed data: the real oasst1 first turns, written in each ecosystem format, give the
same pairs as the oasst1 trees they came from; bad rows are dropped and counted."""

import json

import pandas as pd
import pytest

from humpback.data.instruction_formats import select_instruction_pairs
from humpback.data.oasst import SEED_COLUMNS, select_seed_pairs
from humpback.data.records import RawDataError
from humpback.pipelines.ingestion.nodes import build_seed_pairs, build_web_documents
from tests.conftest import params

OPTIONS = dict(max_text_chars=20_000, max_pairs=None, sample_seed=42)


@pytest.fixture(scope="module")
def oasst_pairs(oasst1_messages) -> pd.DataFrame:
    pairs, _ = select_seed_pairs(oasst1_messages, ["en"], 0, 20_000, True, None, 42)
    return pairs


def as_format(pairs: pd.DataFrame, fmt: str) -> pd.DataFrame:
    if fmt == "instruction_response":
        return pairs.rename(columns={"response": "output"})[["instruction", "output"]]
    if fmt == "prompt_completion":
        return pd.DataFrame({"prompt": pairs["instruction"], "completion": pairs["response"]})
    chats = [
        [
            {"role": "system", "content": "Be helpful."},
            {"role": "user", "content": x},
            {"role": "assistant", "content": y},
        ]
        for x, y in zip(pairs["instruction"], pairs["response"])
    ]
    if fmt == "messages":
        return pd.DataFrame({"messages": chats})
    if fmt == "sharegpt":
        speaker = {"system": "system", "user": "human", "assistant": "gpt"}
        return pd.DataFrame(
            {"conversations": [[{"from": speaker[m["role"]], "value": m["content"]} for m in chat] for chat in chats]}
        )
    if fmt == "alpaca":  # oasst1 prompts have no separate input: the instruction carries it all
        return pd.DataFrame({"instruction": pairs["instruction"], "input": "", "output": pairs["response"]})
    return pd.DataFrame({"prompt": [chat[:2] for chat in chats], "completion": [chat[2:] for chat in chats]})


FORMATS = ["instruction_response", "alpaca", "prompt_completion", "messages", "sharegpt", "conversational_prompt"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_gives_the_same_pairs_as_the_trees(oasst_pairs, fmt, tmp_path):
    records = as_format(oasst_pairs, fmt)
    fmt = "prompt_completion" if fmt == "conversational_prompt" else fmt
    # through Parquet, as a user's file arrives (lists of messages come back as numpy arrays)
    records.to_parquet(tmp_path / "seed.parquet")
    records = pd.read_parquet(tmp_path / "seed.parquet")
    columns = {"response": "output"} if fmt == "instruction_response" else {}

    pairs, funnel = select_instruction_pairs(records, fmt, columns, **OPTIONS)

    assert list(pairs.columns) == SEED_COLUMNS
    assert sorted(pairs["instruction"]) == sorted(oasst_pairs["instruction"])
    by_instruction = dict(zip(oasst_pairs["instruction"], oasst_pairs["response"]))
    assert all(by_instruction[x] == y for x, y in zip(pairs["instruction"], pairs["response"]))
    dropped = funnel.set_index("rule")["dropped"]
    assert dropped.drop("system_turn_left_out").sum() == 0 and funnel["remaining"].iloc[-1] == len(oasst_pairs)
    # the conversational rows open with a system turn: left out of every pair, and counted
    conversational = (
        fmt in ("messages", "sharegpt") or "prompt" in records and not isinstance(records["prompt"][0], str)
    )
    assert dropped["system_turn_left_out"] == (len(oasst_pairs) if conversational else 0)


def test_alpaca_input_follows_its_instruction_as_alpacas_template_places_it(oasst_pairs):
    """Alpaca rows with an ``input`` (the text the instruction is about) keep it: the pair's
    instruction is Alpaca's instruction, a blank line, then the input; rows without one keep their
    instruction alone."""
    real = oasst_pairs.loc[oasst_pairs["instruction"].str.contains("\n")].head(6)
    split = [text.split("\n", 1) if "\n" in text else [text, ""] for text in real["instruction"]]
    records = pd.DataFrame(
        {"instruction": [a for a, _ in split], "input": [b for _, b in split], "output": real["response"]}
    )
    pairs, funnel = select_instruction_pairs(records, "alpaca", {}, **OPTIONS)
    by_response = dict(zip(pairs["response"], pairs["instruction"]))
    for (head, tail), response in zip(split, real["response"]):
        expected = f"{head.strip()}\n\n{tail.strip()}" if tail.strip() else head.strip()
        assert by_response[response] == expected
    assert any(tail.strip() for _, tail in split)  # the sample has multi-line prompts: inputs are tested
    assert funnel["dropped"].sum() == 0


def test_sharegpt_turns_of_unknown_speakers_or_without_a_reply_are_dropped_and_counted():
    records = pd.DataFrame(
        {
            "conversations": [
                [{"from": "human", "value": "Name a prime."}, {"from": "gpt", "value": "Seven."}],
                [{"from": "narrator", "value": "Once"}, {"from": "gpt", "value": "upon a time"}],
                [{"from": "human", "value": "Hello?"}],
                "not a list of turns",
            ]
        }
    )
    pairs, funnel = select_instruction_pairs(records, "sharegpt", {}, **OPTIONS)
    assert pairs[["instruction", "response"]].values.tolist() == [["Name a prime.", "Seven."]]
    assert funnel.set_index("rule")["dropped"]["no_first_turn_pair"] == 3


def test_rows_without_a_first_turn_pair_are_dropped_and_counted():
    records = pd.DataFrame(
        {
            "messages": [
                [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "Seven."}],
                [{"role": "user", "content": "Only a question"}],
                [{"role": "assistant", "content": "An answer first"}, {"role": "user", "content": "then a question"}],
                [{"role": "user", "content": "  "}, {"role": "assistant", "content": "blank prompt"}],
                "not a list of messages",
                [{"role": "user", "content": "Name a prime."}, {"role": "assistant", "content": "Two."}],
            ]
        }
    )
    pairs, funnel = select_instruction_pairs(records, "messages", {}, **OPTIONS)

    assert pairs[["instruction", "response"]].values.tolist() == [["Name a prime.", "Seven."]]
    dropped = funnel.set_index("rule")["dropped"]
    assert dropped["no_first_turn_pair"] == 4 and dropped["duplicate_instruction"] == 1


def test_held_out_slice_and_order_do_not_depend_on_row_order(oasst_pairs):
    records = as_format(oasst_pairs, "prompt_completion")
    options = {**OPTIONS, "heldout_fraction": 0.2, "max_pairs": 50}
    first, _ = select_instruction_pairs(records, "prompt_completion", {}, **options)
    shuffled, _ = select_instruction_pairs(records.sample(frac=1, random_state=3), "prompt_completion", {}, **options)
    assert first["instruction"].tolist() == shuffled["instruction"].tolist() and len(first) == 50


def test_wrong_columns_name_the_parameters_to_set(oasst_pairs):
    records = as_format(oasst_pairs, "instruction_response")  # has `output`, not `response`
    with pytest.raises(RawDataError, match=r"missing column\(s\) \['response'\].*ingestion.seed.columns"):
        select_instruction_pairs(records, "instruction_response", {}, **OPTIONS)
    with pytest.raises(RawDataError, match="'answer'.* not columns of the 'instruction_response' format"):
        select_instruction_pairs(records, "instruction_response", {"answer": "output"}, **OPTIONS)


def test_node_reads_the_format_from_parameters(oasst_pairs):
    records = as_format(oasst_pairs, "messages")
    seed = params("ingestion.seed", format="messages", max_pairs=None, heldout_fraction=0.0)
    pairs, funnel, _ = build_seed_pairs(records, seed)
    assert len(pairs) == len(oasst_pairs) and set(funnel["source"]) == {"seed_messages"}


def test_corpus_text_column_is_a_parameter(c4_documents, tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(
        "\n".join(
            json.dumps({"body": text, "url": url}) for text, url in zip(c4_documents["text"], c4_documents["url"])
        )
    )
    corpus = pd.read_json(path, lines=True)
    web = params("ingestion.web", text_column="body", max_documents=100)
    documents, _ = build_web_documents(corpus, web)
    expected, _ = build_web_documents(c4_documents, params("ingestion.web", max_documents=100))
    assert documents["doc_id"].tolist() == expected["doc_id"].tolist() and len(documents) > 0
    with pytest.raises(RawDataError, match=r"no column 'content' \(ingestion.web.text_column\)"):
        build_web_documents(corpus, params("ingestion.web", text_column="content"))
