"""Both backends on a tiny random Llama: same interface, same greedy output, clear errors."""

import numpy as np
import pytest

from humpback.llm import LLMConfig, PromptError, SamplingConfig, build_llm
from humpback.llm.transformers_backend import length_sorted_batches

CHATS = [
    [{"role": "user", "content": "Write one sentence about tides."}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Why is the sea salty? " * 6}],
    [{"role": "user", "content": "Name a colour."}],
]
GREEDY = SamplingConfig(temperature=0, max_new_tokens=12)
OPTIONS = ["1", "2", "3", "4", "5"]


@pytest.fixture(scope="module")
def transformers_lm(tiny_model_dir):
    with build_llm({"backend": "transformers", "dtype": "float32", "batch_token_budget": 256}, str(tiny_model_dir)) as lm:
        yield lm


@pytest.fixture(scope="module")
def vllm_lm(tiny_model_dir):
    pytest.importorskip("vllm")
    config = {"backend": "vllm", "dtype": "float32", "enforce_eager": True, "max_model_len": 512, "show_progress": False}
    with build_llm(config, str(tiny_model_dir)) as lm:
        yield lm


@pytest.fixture(params=["transformers", pytest.param("vllm", marks=pytest.mark.vllm)])
def lm(request):
    return request.getfixturevalue(f"{request.param}_lm")


def test_generate_returns_one_text_per_prompt_in_order(lm):
    texts = lm.generate(CHATS, GREEDY)
    assert len(texts) == 3 and all(isinstance(t, str) for t in texts)
    # order is the caller's, not the length-sorted batch order
    assert lm.generate([CHATS[2]], GREEDY) == [texts[2]]


def test_seeded_sampling_is_repeatable(lm):
    sampling = SamplingConfig(temperature=1.0, top_p=0.9, max_new_tokens=10, seed=7)
    assert lm.generate(CHATS, sampling) == lm.generate(CHATS, sampling)


def test_raw_prompts_and_stop_strings(lm):
    [full] = lm.generate(["The tide comes in and"], GREEDY)
    stop = full[3:6]
    if stop.strip():
        [cut] = lm.generate(["The tide comes in and"], GREEDY.model_copy(update={"stop": [stop]}))
        assert stop not in cut and full.startswith(cut)


def test_score_options_are_next_token_probabilities(lm):
    scores = lm.score_options(CHATS, OPTIONS)
    assert scores.shape == (3, 5)
    assert np.all(scores > 0) and np.all(scores.sum(axis=1) <= 1 + 1e-6)


def test_backends_agree(transformers_lm, vllm_lm):
    pytest.importorskip("vllm")
    assert transformers_lm.generate(CHATS, GREEDY) == vllm_lm.generate(CHATS, GREEDY)
    np.testing.assert_allclose(
        transformers_lm.score_options(CHATS, OPTIONS), vllm_lm.score_options(CHATS, OPTIONS), rtol=1e-3, atol=1e-6
    )


def test_bad_requests_give_clear_errors(lm):
    assert lm.generate([], GREEDY) == []
    assert lm.score_options([], OPTIONS).shape == (0, 5)
    with pytest.raises(PromptError, match="prompt 1 is empty"):
        lm.generate([CHATS[0], "  "], GREEDY)
    with pytest.raises(PromptError, match="prompt 0 is empty"):
        lm.generate([[{"role": "user", "content": ""}]], GREEDY)
    with pytest.raises(PromptError, match="prompt 0 has .* tokens"):
        lm.generate(["tide " * 2500], GREEDY)
    with pytest.raises(PromptError, match="must be one token"):
        lm.score_options(CHATS, ["excellent answer"])
    with pytest.raises(PromptError, match="at least one option"):
        lm.score_options(CHATS, [])


def test_batches_are_length_sorted_and_within_budget():
    lengths = [5, 40, 12, 40, 3, 100]
    batches = list(length_sorted_batches(lengths, reserve=10, token_budget=120, max_batch_size=3))
    assert sorted(i for b in batches for i in b) == list(range(6))
    assert batches[0] == [5]  # 110 tokens: alone
    for batch in batches:
        assert len(batch) <= 3
        assert (max(lengths[i] for i in batch) + 10) * len(batch) <= 120 or len(batch) == 1
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(flat, reverse=True)


def test_shared_prefix_cache_gives_the_same_scores(transformers_lm):
    from humpback.prompts import rating_chat

    prompts = [rating_chat(q, a, "option_probabilities", few_shot=2) for q, a in
               [("What is a tide?", "The rise and fall of the sea."), ("Name a colour.", "Blue " * 40), ("Hi", "Hello")]]
    cached = transformers_lm.score_options(prompts, OPTIONS)
    transformers_lm.MIN_SHARED_PREFIX = 10**9  # instance override: no prefix cache
    try:
        uncached = transformers_lm.score_options(prompts, OPTIONS)
    finally:
        del transformers_lm.MIN_SHARED_PREFIX
    np.testing.assert_allclose(cached, uncached, rtol=1e-4, atol=1e-7)
