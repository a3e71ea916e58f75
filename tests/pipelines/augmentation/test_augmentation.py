import numpy as np
import pandas as pd
import pytest

from humpback.datasets import CheckpointHandle
from humpback.pipelines.augmentation.nodes import (
    CANDIDATE_COLUMNS,
    INSTRUCTION_NLL_COLUMNS,
    base_model_instruction_nll,
    generate_instructions,
    instruction_nll,
    instruction_nll_after_other_answers,
    screen_instructions,
    summarise_backward_controls,
)
from humpback.pipelines.augmentation.postprocess import clean_instruction, looks_like_request, strip_wrappers
from tests.conftest import HELDOUT_PAIRS, NO_SHARDS, params
from tests.scripts import scripted

DOCUMENT = (
    "Beginners BBQ Class Taking Place in Missoula! Do you want to get better at making delicious BBQ? "
    "You will have the opportunity, put this on your calendar now. Thursday, September 22nd join World Class BBQ "
    "Champion, Tony Balay from Lonestar Smoke Rangers."
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ('You can ask: "How do I get better at making BBQ?"', "How do I get better at making BBQ?"),
        ("Question: Where can I learn to smoke brisket?\nAnswer: In Missoula.", "Where can I learn to smoke brisket?"),
        ("Sure! Here is a possible question: Where can I learn BBQ?", "Where can I learn BBQ?"),
        ("**Instruction:** Write an ad for a BBQ class.", "Write an ad for a BBQ class."),
        ("“What should a beginner know about BBQ?”", "What should a beginner know about BBQ?"),
        ("A user might ask: Is there a BBQ class for beginners?", "Is there a BBQ class for beginners?"),
        ("Write a short poem about smoke.", "Write a short poem about smoke."),
    ],
)
def test_wrappers_labels_quotes_and_answers_are_stripped(raw, expected):
    assert strip_wrappers(raw) == expected
    assert clean_instruction(raw, DOCUMENT, 10, 500, 0.9) == (expected, "ok")


@pytest.mark.parametrize(
    "raw, status",
    [
        (None, "prompt_too_long"),
        ("", "empty"),
        ('You can ask: ""', "empty"),
        ("BBQ?", "too_short"),
        ("Explain " + "smoking meat slowly " * 40, "too_long"),
        ("Beginners BBQ Class Taking Place in Missoula! Do you want to get better at making delicious BBQ?", "echo"),
        ('"beginners bbq class -- taking place in Missoula"', "echo"),  # punctuation and case do not hide a copy
    ],
)
def test_unusable_outputs_get_a_reason(raw, status):
    assert clean_instruction(raw, DOCUMENT, 10, 500, 0.9) == (None, status)


def test_every_document_becomes_a_candidate_with_raw_output_and_status(web_sample, tiny_model_dir, tmp_path):
    """A backward model with known answers: a request (wrapped) for three documents, echoes of
    the document for the others."""
    documents = web_sample.copy()
    documents.loc[:2, "text"] = documents.loc[:2, "text"] + " We smoke brisket every weekend."
    generation = params("generation", shard_dir=str(tmp_path), shard_size=5)
    candidates = generate_instructions(
        documents, CheckpointHandle(str(tiny_model_dir)), scripted("BackwardModel"), params("augmentation"), generation
    )

    assert list(candidates.columns) == CANDIDATE_COLUMNS
    assert candidates["doc_id"].tolist() == documents["doc_id"].tolist()
    assert candidates["response"].tolist() == documents["text"].tolist()
    assert candidates["raw_instruction"].head(3).eq("Sure! You can ask: How do I smoke a brisket?").all()
    assert candidates["instruction"].head(3).eq("How do I smoke a brisket?").all()  # the wrapper is stripped
    # one request is kept; its two repeats are screened out before curation, their text kept
    assert candidates["status"].tolist() == ["ok"] + ["duplicate_instruction"] * 2 + ["echo"] * 9
    assert candidates["instruction"].iloc[3:].isna().all()
    assert candidates["request_like"].tolist() == [True] * 3 + [False] * 9
    assert len(list((tmp_path / "augmentation").glob("*.parquet"))) == 3  # 12 rows in shards of 5


def test_the_backward_model_writes_from_documents_cut_as_in_its_training(web_sample, tiny_model_dir):
    """Trained on documents cut to its max_length, it is shown documents cut the same way; the
    candidate's response stays the whole document."""
    from humpback.llm import load_tokenizer

    tokenizer = load_tokenizer(tiny_model_dir)
    trained = CheckpointHandle(str(tiny_model_dir), {"hyperparameters": {"max_length": 120}})
    augmentation = params("augmentation", sampling={"max_new_tokens": 24})
    generation = params("generation", shard_dir=None)
    candidates = generate_instructions(web_sample, trained, scripted("DocumentTail"), augmentation, generation)
    assert candidates["response"].tolist() == web_sample["text"].tolist()
    long = [len(tokenizer.encode(text, add_special_tokens=False)) > 120 for text in web_sample["text"]]
    assert any(long)
    for text, raw, is_long in zip(web_sample["text"], candidates["raw_instruction"], long):
        tail = raw.removeprefix("Tail: ")
        assert text.split()[-6:] != tail.split() if is_long else " ".join(text.split()[-6:]) == tail
        assert tail.split()[-1] in text  # the words shown are the document's own, from its start
    untrained = generate_instructions(
        web_sample, CheckpointHandle(str(tiny_model_dir)), scripted("DocumentTail"), augmentation, generation
    )
    assert untrained["raw_instruction"].str.removeprefix("Tail: ").tolist() == [
        " ".join(text.split()[-6:]) for text in web_sample["text"]
    ]  # a model with no training record sees whole documents


@pytest.mark.parametrize(
    "instruction, expected",
    [
        ("How do I smoke a brisket?", True),
        ("Write a short poem about tides.", True),
        ("Can you recommend a hiking trail near Missoula", True),
        ("I need a checklist for moving house", True),
        ("Is it safe to swim after eating? I have always wondered.", True),
        ('"Explain the rules of cricket."', True),
        # what an untrained backward model writes: continuations and summaries, not requests
        ("Yes, please.", False),
        ("Yes, please, please, please, please", False),
        ("The article describes a BBQ class held in Missoula.", False),
        ("Beginners BBQ Class Taking Place in Missoula!", False),
        (None, False),
        # a question mark alone is no request: bare names, fragments, the same question twice
        ("Jessica Heilman?", False),
        ("The best pizza in Missoula?", False),
        ("What?", False),
        ("What happened to China? What happened to China?", False),
        ("Any tips for a first marathon?", True),
    ],
)
def test_request_like_instructions(instruction, expected):
    assert looks_like_request(instruction) is expected


#: no base-model likelihoods (augmentation.base_reference_controls off)
NO_BASE = pd.DataFrame(columns=INSTRUCTION_NLL_COLUMNS)


def candidates_with(statuses: list[str], request_like: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"status": statuses, "request_like": request_like})


def test_a_backward_model_that_reads_the_answer_passes_its_controls(tiny_model_dir):
    model = CheckpointHandle(str(tiny_model_dir))
    llm = scripted("DiscriminatingBackward")
    own = instruction_nll(HELDOUT_PAIRS, model, llm, NO_SHARDS)
    other = instruction_nll_after_other_answers(HELDOUT_PAIRS, model, llm, NO_SHARDS)
    assert (own["status"] == "ok").all() and (own["instruction_tokens"] > 0).all()
    np.testing.assert_allclose(own["instruction_nll"], own["instruction_tokens"])  # 1 nat per token
    np.testing.assert_allclose(other["instruction_nll"], 3 * own["instruction_tokens"])  # same tokens, 3 nats
    good = candidates_with(["ok"] * 9 + ["echo"], [True] * 8 + [False, False])
    check = summarise_backward_controls(own, other, NO_BASE, NO_BASE, good, params("augmentation"))
    assert (check["instruction_nll_own_answer"], check["instruction_nll_other_answer"]) == (1.0, 3.0)
    assert (check["discrimination_share"], check["discrimination_ci_low"], check["heldout_pairs"]) == (1.0, 1.0, 4)
    assert (check["request_like_share"], check["echo_share"], check["passed"]) == (8 / 9, 0.1, True)
    assert [row["passed"] for row in check["rows"]] == [True, True, True]  # the report's rows, decided here


def test_a_backward_model_that_ignores_the_answer_fails_though_it_beats_the_base_model(tiny_model_dir):
    """Before, the check compared M_yx with the base model in a format the base never saw: a model
    that had learnt the format alone (1 nat a token, whatever the answer, against the base's 3)
    passed it. Under M_yx's own discrimination it sits at chance."""
    model = CheckpointHandle(str(tiny_model_dir))
    own = instruction_nll(HELDOUT_PAIRS, model, scripted("TrainedBackward"), NO_SHARDS)
    base = instruction_nll(HELDOUT_PAIRS, model, scripted("UntrainedBackward"), NO_SHARDS)
    assert (own["instruction_nll"] < base["instruction_nll"]).all()  # what the old check passed on
    other = instruction_nll_after_other_answers(HELDOUT_PAIRS, model, scripted("TrainedBackward"), NO_SHARDS)
    good = candidates_with(["ok"] * 10, [True] * 10)
    check = summarise_backward_controls(own, other, NO_BASE, NO_BASE, good, params("augmentation"))
    assert (check["discrimination_share"], check["passed"]) == (0.5, False)
    assert check["reason"] == "true instructions not told by their answers (share 0.50 [0.50, 0.50] < 0.70)"


def test_a_discrimination_the_base_model_shows_too_is_labelled_checks_wiring(tiny_model_dir):
    """Word overlap alone lets any model find a true instruction likelier after its own answer: the
    base model's share stands beside M_yx's, and where it passes too the check says it checks wiring.
    What the base model fails by construction (0.5 against itself): M_yx reading the answer more."""
    model = CheckpointHandle(str(tiny_model_dir))
    llm = scripted("DiscriminatingBackward")
    own = instruction_nll(HELDOUT_PAIRS, model, llm, NO_SHARDS)
    other = instruction_nll_after_other_answers(HELDOUT_PAIRS, model, llm, NO_SHARDS)
    good = candidates_with(["ok"] * 10, [True] * 10)
    on = params("augmentation", base_reference_controls=True)
    base_own, base_other = base_model_instruction_nll(HELDOUT_PAIRS, model, llm, NO_SHARDS, on)
    wired = summarise_backward_controls(own, other, base_own, base_other, good, on)
    assert wired["discrimination_checks_wiring"] and wired["base_discrimination_share"] == 1.0
    assert wired["rows"][0]["check"].endswith(": checks wiring (the base model passes it too)")
    assert (wired["rows"][1]["model"], wired["rows"][1]["value"]) == ("backward model (base)", 1.0)
    # the check the base model fails: M_yx reads the answer no more than the base model does
    assert wired["rows"][2]["check"].startswith("answer read more than the base model reads it")
    assert (wired["reads_more_than_base_share"], wired["rows"][2]["passed"], wired["passed"]) == (0.5, False, False)
    assert wired["reason"].startswith("the answer read no more than the base model reads it (share 0.50")
    blind = instruction_nll(HELDOUT_PAIRS, model, scripted("TrainedBackward"), NO_SHARDS)  # reads no answer
    blind_other = instruction_nll_after_other_answers(HELDOUT_PAIRS, model, scripted("TrainedBackward"), NO_SHARDS)
    own_only = summarise_backward_controls(own, other, blind, blind_other, good, on)
    assert not own_only["discrimination_checks_wiring"] and own_only["base_discrimination_share"] == 0.5
    assert own_only["reads_more_than_base_share"] == 1.0
    assert "checks wiring" not in own_only["rows"][0]["check"] and own_only["passed"]
    off = base_model_instruction_nll(
        HELDOUT_PAIRS, model, llm, NO_SHARDS, params("augmentation", base_reference_controls=False)
    )
    assert all(frame.empty for frame in off)


def test_a_backward_model_that_writes_continuations_fails_its_controls(tiny_model_dir, caplog):
    """What the old default did: "Yes, please." and echoes, whatever the document."""
    model = CheckpointHandle(str(tiny_model_dir))
    same = instruction_nll(HELDOUT_PAIRS, model, scripted("UntrainedBackward"), NO_SHARDS)
    bad = candidates_with(["ok"] * 6 + ["echo"] * 4, [False] * 5 + [True] + [False] * 4)
    check = summarise_backward_controls(same, same, NO_BASE, NO_BASE, bad, params("augmentation"))
    assert not check["passed"] and "BACKWARD MODEL FAILED ITS CONTROLS" in caplog.text
    assert check["reason"] == (
        "true instructions not told by their answers (share 0.50 [0.50, 0.50] < 0.70); "
        "request-like share 0.17 < 0.80; echo share 0.40 > 0.20"
    )


def test_instructions_in_another_language_or_repeated_are_screened_out_before_curation():
    instructions = [
        "How do I smoke a brisket?",
        "how do I smoke a brisket",  # the same words: exact duplicate
        "How do I smoke a beef brisket?",  # one word added to six: near duplicate
        "What happened to China?",
        "What happened to Japan?",  # a different request that shares most words: kept
        "Wie kann ich eine Rinderbrust im Smoker langsam garen, damit sie zart wird?",
        None,
    ]
    candidates = pd.DataFrame(
        {
            "instruction": instructions,
            "status": ["ok"] * 6 + ["echo"],
        }
    )
    screened = screen_instructions(candidates, params("augmentation"))
    assert screened["status"].tolist() == [
        "ok",
        "duplicate_instruction",
        "near_duplicate_instruction",
        "ok",
        "ok",
        "other_language",
        "echo",
    ]
    assert screened["instruction"].tolist()[:6] == instructions[:6]  # screened rows keep their text


def test_an_instruction_cut_at_max_new_tokens_is_not_used(web_sample, tiny_model_dir):
    def candidates(use_truncated: bool):
        augmentation = params("augmentation", use_truncated=use_truncated)
        model = CheckpointHandle(str(tiny_model_dir))
        generation = params("generation", shard_dir=None)
        return generate_instructions(web_sample, model, scripted("StillWriting"), augmentation, generation)

    cut = candidates(use_truncated=False)
    assert (cut["status"] == "truncated").all() and cut["instruction"].isna().all()
    assert cut["raw_instruction"].str.startswith("Here is a rewrite").all()  # the raw output is kept
    smoke = candidates(use_truncated=True)  # a smoke run with an untrained model may use them
    assert not (smoke["status"] == "truncated").any() and smoke["instruction"].notna().any()
