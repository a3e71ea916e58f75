"""A base model trained in the project's prompt format learns to stop, and both backends stop there."""

import pandas as pd
import pytest

from humpback.datasets import CheckpointHandle, ModelCheckpointDataset
from humpback.llm import SamplingConfig, build_llm
from humpback.pipelines.training.nodes import prepare_sft_examples, train_model
from humpback.prompts import forward_chat
from tests.conftest import HELDOUT_PAIRS, params

ANSWER = "one two three"
MAX_NEW_TOKENS = 40


@pytest.fixture(scope="module")
def toy_model(tiny_model_dir, tmp_path_factory):
    """The tiny base model fine-tuned on a fixed toy task: 'Count to three.' → 'one two three'."""
    pairs = pd.DataFrame({"instruction": ["Count to three."] * 8, "response": [ANSWER] * 8, "source": "seed"})
    training = params(
        "seed_model.training",
        max_length=64,
        learning_rate=1e-2,
        batch_size=4,
        per_device_train_batch_size=4,
        max_steps=80,
        heldout_examples=0,
        precision="fp32",
        use_tags=False,
        warmup_ratio=0.0,
    )
    base = CheckpointHandle(str(tiny_model_dir))
    examples, _ = prepare_sft_examples(pairs, base, training, HELDOUT_PAIRS, params("decontamination"))
    artifacts, _, _ = train_model(examples, base, training)
    path = tmp_path_factory.mktemp("toy") / "model"
    ModelCheckpointDataset(path=str(path)).save(artifacts)
    return path


@pytest.mark.parametrize("backend", ["transformers", pytest.param("vllm", marks=pytest.mark.vllm)])
def test_trained_model_stops_at_the_answer_end_token(toy_model, backend):
    if backend == "vllm":
        pytest.importorskip("vllm")
    config = params("llm", backend=backend, enforce_eager=True, max_model_len=256)
    greedy = SamplingConfig(temperature=0, top_p=1.0, max_new_tokens=MAX_NEW_TOKENS, stop=[], seed=None)
    with build_llm(config, str(toy_model)) as lm:
        [answer] = lm.generate([forward_chat("Count to three.")], greedy)
        # without the stop token the model would run on to max_new_tokens (its next turn, padding…)
        assert answer.strip() == ANSWER
        assert len(lm.tokenizer.encode(answer, add_special_tokens=False)) < MAX_NEW_TOKENS
        assert lm.stop_token_ids == [lm.tokenizer.eos_token_id]
