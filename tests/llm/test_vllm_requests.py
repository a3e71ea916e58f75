"""What the vLLM backend asks of the engine, checked against a stand-in of vLLM's API (its CUDA build
does not install here): sampling seeds per request, never shared, the same for a request wherever it
is computed; prompt log-probabilities asked in calls of bounded size."""

import sys
import types

from humpback.llm import SamplingConfig, build_llm
from humpback.llm.base import request_seeds
from humpback.llm.vllm_backend import VLLMLanguageModel
from tests.conftest import params

SAMPLED = SamplingConfig(temperature=0.7, top_p=0.9, max_new_tokens=12, stop=[], seed=0)


def test_each_request_gets_its_own_seed_from_its_tokens_and_the_run_seed():
    prompts = [[1, 5, 9], [1, 5, 8], [2, 5, 9, 4], [1, 5, 9]]
    seeds = request_seeds(prompts, 0)
    assert len(set(seeds[:3])) == 3  # equal lengths too: no two requests draw the same noise
    assert seeds[3] == seeds[0]  # the same request, the same seed, in any batch
    assert request_seeds(prompts[2:3], 0) == seeds[2:3]
    assert request_seeds(prompts, 1) != seeds  # another run seed, other draws
    assert all(0 <= seed < 2**31 for seed in seeds)


def stand_in_model(monkeypatch, made: list, **llm) -> VLLMLanguageModel:
    """The backend over a stand-in engine: ``made`` collects every SamplingParams' options."""

    class SamplingParams:
        def __init__(self, **options):
            made.append(options)

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(SamplingParams=SamplingParams))
    model = object.__new__(VLLMLanguageModel)
    model.config = params("llm", backend="vllm", **llm)
    model.__dict__["stop_token_ids"] = [2]
    return model


def test_vllm_gets_one_sampling_params_per_request_with_its_seed(monkeypatch):
    made = []
    model = stand_in_model(monkeypatch, made)
    seen = {}

    def generate(prompts, sampling, use_tqdm):
        seen["prompts"], seen["sampling"] = prompts, sampling
        return [
            types.SimpleNamespace(outputs=[types.SimpleNamespace(text=f"out {i}", finish_reason=("stop", "length")[i])])
            for i in range(len(prompts))
        ]

    model.llm = types.SimpleNamespace(generate=generate)
    prompts = [[1, 5, 9], [1, 5, 8]]
    assert model._generate_checked(prompts, SAMPLED) == [("out 0", False), ("out 1", True)]  # cut at max_tokens
    assert isinstance(seen["sampling"], list) and len(seen["sampling"]) == 2
    assert [options["seed"] for options in made] == request_seeds(prompts, 0)


def test_a_resumed_shard_regenerates_the_same_sampled_text(tiny_model_dir):
    """The transformers backend samples each request from its own seed: the same shard, the same text."""
    with build_llm(params("llm", batch_token_budget=256), str(tiny_model_dir)) as lm:
        prompts = [[{"role": "user", "content": f"Tell me about tide number {n}."}] for n in range(4)]
        first = lm.generate(prompts, SAMPLED)
        again = lm.generate(prompts, SAMPLED)
        other_seed = lm.generate(prompts, SAMPLED.model_copy(update={"seed": 1}))
    assert first == again
    assert other_seed != first


def test_prompt_logprobs_are_asked_in_calls_of_at_most_the_token_budget(monkeypatch):
    model = stand_in_model(monkeypatch, [], score_batch_tokens=10)
    calls = []

    def generate(prompts, sampling, use_tqdm):
        calls.append([len(p["prompt_token_ids"]) for p in prompts])
        logprob = types.SimpleNamespace(logprob=-1.0)
        return [
            types.SimpleNamespace(prompt_logprobs=[{token: logprob for token in p["prompt_token_ids"]}] * 20)
            for p in prompts
        ]

    model.llm = types.SimpleNamespace(generate=generate)
    sequences = [[1] * 4, [2] * 5, [3] * 3, [4] * 12, [5] * 2]
    scored = model._token_logprobs(sequences, [1, 1, 1, 1, 1])
    assert calls == [[4, 5], [3], [12], [2]]  # ≤ 10 tokens a call; a longer sequence alone
    assert [len(values) for values in scored] == [3, 4, 2, 11, 1]  # in order, one per sequence


def test_on_a_cpu_the_kv_cache_is_sized_by_the_parameter_unless_vllm_s_own_variable_is_set(monkeypatch, tiny_model_dir):
    """vLLM's CPU build takes its KV cache outside the model's memory: ``llm.cpu_kv_cache_gib``
    sizes it (a default run's engine sits beside the run's own process); the variable vLLM
    documents for it, when a user sets it, wins."""
    engines = []

    class LLM:
        def __init__(self, **options):
            engines.append(options)

        def get_tokenizer(self):
            return None

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM))
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    VLLMLanguageModel(params("llm", backend="vllm", cpu_kv_cache_gib=0.5), str(tiny_model_dir))
    assert engines[-1]["kv_cache_memory_bytes"] == 2**29
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    VLLMLanguageModel(params("llm", backend="vllm", cpu_kv_cache_gib=0.5), str(tiny_model_dir))
    assert "kv_cache_memory_bytes" not in engines[-1]
