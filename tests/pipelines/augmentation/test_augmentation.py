import pytest

from humpback.datasets import CheckpointHandle
from humpback.pipelines.augmentation.nodes import CANDIDATE_COLUMNS, generate_instructions
from humpback.pipelines.augmentation.postprocess import clean_instruction, looks_like_request, strip_wrappers
from tests.conftest import params
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
    assert candidates["status"].tolist() == ["ok"] * 3 + ["echo"] * 9
    assert candidates["instruction"].iloc[3:].isna().all()
    assert candidates["request_like"].tolist() == [True] * 3 + [False] * 9
    assert len(list((tmp_path / "augmentation").glob("*.parquet"))) == 3  # 12 rows in shards of 5


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
    ],
)
def test_request_like_instructions(instruction, expected):
    assert looks_like_request(instruction) is expected
