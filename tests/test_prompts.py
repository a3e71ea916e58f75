"""The prompts the method sends: the curation prompt as the paper poses it, the base-model format."""

import pytest

from humpback.prompts import RATING_EXAMPLES, SCORE_PREFIX, rating_chat

#: a phrase for every criterion of the paper's 5-point scale (the paper's rating prompt)
CRITERIA = [
    "incomplete",
    "vague",
    "off-topic",
    "controversial",
    "not exactly what was asked",
    "content seems to be missing",
    "numbered list does not start",
    "repeats the user's question",
    "personal experience",
    "blog post",
    "forum",
    "promotional text",
    "navigation text",
    "irrelevant content",
    "not answer the request directly",
    "high-level method instead of the exact solution",
    "helpful, complete and self-contained",
    "not written from an AI assistant's point of view",
    "search results",
    "comments section",
    "social media",
    "clearly focused",
    "comprehensive",
    "well organised",
    "helpful tone",
    "more concise",
    "more focused",
    "no irrelevant sentence",
    "expert knowledge",
    "logical, easy to follow, engaging and insightful",
]


@pytest.mark.parametrize("scorer", ["generate", "option_probabilities"])
def test_rating_prompt_is_one_user_turn_with_every_criterion(scorer):
    chat = rating_chat("How do tides work?", "The Moon pulls the oceans.", scorer)
    assert chat[0]["role"] == "user" and not any(m["role"] == "system" for m in chat)
    text = chat[0]["content"]
    for criterion in CRITERIA:
        assert criterion in text, criterion
    # framing first, then the scale, the output format, and the pair last
    assert (
        text.index("AI assistant should respond")
        < text.index("1: ")
        < text.index("Score: <1-5>")
        < text.index("How do tides work?")
    )
    assert text.rstrip().endswith("The Moon pulls the oceans.")
    if scorer == "generate":
        assert len(chat) == 1  # the model reasons first, then writes Score: N
    else:
        assert chat[1] == {"role": "assistant", "content": SCORE_PREFIX}  # the next token is the digit


def test_worked_examples_stay_inside_the_one_user_turn():
    chat = rating_chat("Q?", "A.", "generate", few_shot=2)
    assert len(chat) == 1
    for instruction, _, reasoning, score in RATING_EXAMPLES[:2]:
        assert instruction in chat[0]["content"] and f"{reasoning}\nScore: {score}" in chat[0]["content"]
    assert RATING_EXAMPLES[2][0] not in chat[0]["content"]
