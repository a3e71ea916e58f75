"""Both backends on a tiny random Llama: same interface, same greedy output, clear errors."""

import numpy as np
import pytest

from humpback.llm import PromptError, SamplingConfig, build_llm
from humpback.llm.transformers_backend import PerRequestSampler, length_sorted_batches
from tests.conftest import params

CHATS = [
    [{"role": "user", "content": "Write one sentence about tides."}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Why is the sea salty? " * 6}],
    [{"role": "user", "content": "Name a colour."}],
]
GREEDY = SamplingConfig(temperature=0, top_p=1.0, max_new_tokens=12, stop=[], seed=None)
OPTIONS = ["1", "2", "3", "4", "5"]


@pytest.fixture(scope="module")
def transformers_lm(tiny_model_dir):
    with build_llm(params("llm", batch_token_budget=256), str(tiny_model_dir)) as lm:
        yield lm


@pytest.fixture(scope="module")
def vllm_lm(tiny_model_dir):
    pytest.importorskip("vllm")
    with build_llm(params("llm", backend="vllm", enforce_eager=True, max_model_len=512), str(tiny_model_dir)) as lm:
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
    sampling = SamplingConfig(temperature=1.0, top_p=0.9, max_new_tokens=10, stop=[], seed=7)
    assert lm.generate(CHATS, sampling) == lm.generate(CHATS, sampling)


def test_a_sampled_request_writes_the_same_text_alone_or_in_any_batch(lm):
    """Each request draws from its own seed: its text does not depend on which requests share its
    batch, so adding documents to a run leaves the other documents' instructions as they were."""
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=10, stop=[], seed=7)
    together = lm.generate(CHATS, sampling)
    assert len(set(together)) == 3
    assert [lm.generate([chat], sampling)[0] for chat in CHATS] == together
    assert lm.generate([CHATS[2], CHATS[0]], sampling) == [together[2], together[0]]


@pytest.mark.parametrize(
    ("temperature", "top_p", "expected"),
    [
        (1.0, 1.0, [0.7, 0.2, 0.1]),
        (0.5, 1.0, [0.907, 0.074, 0.019]),  # p² renormalised: a sampler that ignored temperature fails
        (1.0, 0.75, [0.78, 0.22, 0.0]),
    ],
)
def test_the_per_request_sampler_draws_from_the_tempered_nucleus(temperature, top_p, expected):
    import torch

    rows = 4000
    scores = torch.log(torch.tensor([[0.7, 0.2, 0.1]])).repeat(rows, 1)
    chosen = PerRequestSampler(list(range(rows)), temperature, top_p)(None, scores)
    assert torch.all(torch.isfinite(chosen).sum(dim=1) == 1)  # one token left per row, for greedy to take
    shares = torch.isfinite(chosen).float().mean(dim=0).numpy()
    np.testing.assert_allclose(shares, expected, atol=0.03)  # 3 standard errors at 4,000 draws
    again = PerRequestSampler(list(range(rows)), temperature, top_p)(None, scores)
    assert torch.equal(chosen, again)


def test_raw_prompts_and_stop_strings(lm):
    [full] = lm.generate(["The tide comes in and"], GREEDY)
    words = full.split()
    assert len(words) >= 3, f"the tiny model wrote too little to test stopping: {full!r}"
    stop = words[2]  # a word the greedy output contains: generation must end just before it
    [cut] = lm.generate(["The tide comes in and"], GREEDY.model_copy(update={"stop": [stop]}))
    assert cut == full[: full.index(stop)]


def test_score_options_are_next_token_probabilities(lm):
    scores = lm.score_options(CHATS, OPTIONS)
    assert scores.shape == (3, 5)
    assert np.all(scores > 0) and np.all(scores.sum(axis=1) <= 1 + 1e-6)


@pytest.mark.vllm
def test_backends_see_the_same_tokens_as_training(transformers_lm, vllm_lm):
    """A template-less base model in the project's format: both backends encode every prompt
    (a continued answer too) to the ids TRL trains on."""
    from humpback.prompts import rating_chat

    prompts = [
        *CHATS,
        rating_chat("What is a tide?", "The rise and fall of the sea.", "option_probabilities", few_shot=1),
    ]
    ours, theirs = transformers_lm.encode(prompts), vllm_lm.encode(prompts)
    assert ours == theirs
    tokenizer = transformers_lm.tokenizer
    for chat, ids in zip(CHATS, ours):
        assert (
            ids
            == tokenizer.apply_chat_template(chat, tokenize=True, add_generation_prompt=True, return_dict=True)[
                "input_ids"
            ]
        )
        assert ids[0] == tokenizer.bos_token_id and tokenizer.decode(ids).endswith("### Assistant:\n")
    assert tokenizer.decode(ours[-1]).endswith("### Assistant:\nScore: ")  # the score digit comes next
    assert transformers_lm.stop_token_ids == vllm_lm.stop_token_ids == [tokenizer.eos_token_id]


@pytest.mark.vllm
def test_backends_agree(transformers_lm, vllm_lm):
    assert transformers_lm.generate(CHATS, GREEDY) == vllm_lm.generate(CHATS, GREEDY)
    np.testing.assert_allclose(
        transformers_lm.score_options(CHATS, OPTIONS), vllm_lm.score_options(CHATS, OPTIONS), rtol=1e-3, atol=1e-6
    )


def test_bad_requests_give_clear_errors_and_overlong_prompts_no_answer(lm):
    assert lm.generate([], GREEDY) == []
    assert lm.score_options([], OPTIONS).shape == (0, 5)
    with pytest.raises(PromptError, match="prompt 1 is empty"):
        lm.generate([CHATS[0], "  "], GREEDY)
    with pytest.raises(PromptError, match="prompt 0 is empty"):
        lm.generate([[{"role": "user", "content": ""}]], GREEDY)
    # too long for the context: answered None in both doors (text and ids), never an exception
    too_long = "tide " * 2500
    assert lm.generate([too_long, CHATS[0]], GREEDY)[0] is None
    assert lm.generate_ids(lm.encode([too_long]), GREEDY) == [None]
    assert np.isnan(lm.score_options([too_long], OPTIONS)).all()
    assert lm.completion_logprobs([too_long], ["an answer"]) == [None]
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

    prompts = [
        rating_chat(q, a, "option_probabilities", few_shot=2)
        for q, a in [
            ("What is a tide?", "The rise and fall of the sea."),
            ("Name a colour.", "Blue " * 40),
            ("Hi", "Hello"),
        ]
    ]
    cached = transformers_lm.score_options(prompts, OPTIONS)
    transformers_lm.MIN_SHARED_PREFIX = 10**9  # instance override: no prefix cache
    try:
        uncached = transformers_lm.score_options(prompts, OPTIONS)
    finally:
        del transformers_lm.MIN_SHARED_PREFIX
    np.testing.assert_allclose(cached, uncached, rtol=1e-4, atol=1e-7)


ANSWERS = ["Tides rise and fall twice a day.", "Salt washes in from rocks on land. " * 3, "Blue."]


def test_completion_logprobs_of_a_uniform_model_are_minus_log_vocabulary(tmp_path, tiny_model_dir):
    """Hand-computed: with zero embeddings every logit is 0, so each token has probability 1/V."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        model.get_input_embeddings().weight.zero_()
    model.save_pretrained(tmp_path, safe_serialization=True)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.save_pretrained(tmp_path)
    with build_llm(params("llm"), str(tmp_path)) as uniform:
        logprobs = uniform.completion_logprobs(CHATS, ANSWERS)
    vocabulary = model.config.vocab_size
    for answer, values in zip(ANSWERS, logprobs):
        # the answer's own tokens plus the token that ends it (the project's format: eos)
        assert len(values) == len(tokenizer.encode(answer.strip(), add_special_tokens=False)) + 1  # the format trims
        np.testing.assert_allclose(values, -np.log(vocabulary), rtol=1e-5)


def test_completion_logprobs_match_a_direct_forward_pass(transformers_lm, tiny_model_dir):
    import torch

    [values] = transformers_lm.completion_logprobs([CHATS[0]], [ANSWERS[0]])
    prompt_ids = transformers_lm.encode([CHATS[0]])[0]
    full = transformers_lm.tokenizer.apply_chat_template(
        [*CHATS[0], {"role": "assistant", "content": ANSWERS[0]}], tokenize=False
    )
    ids = transformers_lm.tokenizer.encode(full, add_special_tokens=False)
    assert ids[: len(prompt_ids)] == prompt_ids
    with torch.no_grad():
        logits = transformers_lm.model(torch.tensor([ids])).logits[0].float()
    expected = torch.log_softmax(logits, -1)[torch.arange(len(prompt_ids) - 1, len(ids) - 1), ids[len(prompt_ids) :]]
    np.testing.assert_allclose(values, expected.numpy(), rtol=1e-4, atol=1e-5)
    # batched with longer neighbours: same numbers
    batched = transformers_lm.completion_logprobs(CHATS, ANSWERS)
    np.testing.assert_allclose(batched[0], values, rtol=1e-4, atol=1e-5)


@pytest.mark.vllm
def test_backends_agree_on_completion_logprobs(transformers_lm, vllm_lm):
    for ours, theirs in zip(
        transformers_lm.completion_logprobs(CHATS, ANSWERS), vllm_lm.completion_logprobs(CHATS, ANSWERS)
    ):
        np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-4)


def test_completion_logprobs_reject_or_skip_bad_pairs(lm):
    with pytest.raises(PromptError, match="2 prompts but 1 completions"):
        lm.completion_logprobs(CHATS[:2], ANSWERS[:1])
    with pytest.raises(PromptError, match="completion 0 is empty"):
        lm.completion_logprobs(CHATS[:1], [" "])
    assert lm.completion_logprobs(CHATS[:1], ["tide " * 2500]) == [None]  # too long: no answer, as generate


def test_requests_too_long_for_the_context_are_answered_with_none(lm):
    """The id-level requests the runner uses: a row that does not fit is None/NaN, the others are answered."""
    prompt_ids = lm.encode([CHATS[0], CHATS[2]])
    too_long = prompt_ids[0] * 200
    none, answered = lm.generate_ids([too_long, prompt_ids[1]], GREEDY)
    assert none is None and answered.text == lm.generate([CHATS[2]], GREEDY)[0]
    options = lm.option_probabilities_ids([prompt_ids[0], too_long], OPTIONS)
    assert np.isnan(options[1]).all()
    np.testing.assert_allclose(options[0], lm.score_options([CHATS[0]], OPTIONS)[0], rtol=1e-5)
    scored = lm.completion_logprobs_ids(
        [too_long, prompt_ids[1] + prompt_ids[1]], [len(too_long) - 2, len(prompt_ids[1])]
    )
    assert scored[0] is None and len(scored[1]) == len(prompt_ids[1])


def test_a_generation_cut_at_max_new_tokens_says_so(lm):
    """The tiny random model never writes its stop token: four new tokens are a cut output, unless
    a stop string ended it first."""
    short = GREEDY.model_copy(update={"max_new_tokens": 4})
    [cut] = lm.generate_ids(lm.encode(["The tide comes in and"]), short)
    assert cut.truncated and cut.text
    first_word = cut.text.split()[0]
    [stopped] = lm.generate_ids(lm.encode(["The tide comes in and"]), short.model_copy(update={"stop": [first_word]}))
    assert not stopped.truncated and first_word not in stopped.text


def test_completion_scoring_refuses_a_model_whose_logits_it_cannot_reproduce(transformers_lm):
    """Completions are scored through the output layer position by position (a batch's full logits
    would be gigabytes); a model whose forward scales its logits otherwise must fail, not score wrong."""
    from humpback.llm.transformers_backend import OutputLayerMismatchError

    transformers_lm.model.config.final_logit_softcapping = 1.0  # applied here, not by Llama's forward
    try:
        with pytest.raises(OutputLayerMismatchError, match="score completions with the vllm backend"):
            transformers_lm.completion_logprobs(CHATS, ANSWERS)
    finally:
        transformers_lm.model.config.final_logit_softcapping = None
