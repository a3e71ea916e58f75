"""What the GPU environments rely on, proved on CPU with fakes of the GPU-only behaviour: memory given
back between nodes, no evaluation before FSDP2 prepares model and optimizer together, one device per
in-process training, the process group before the weights, progress and time limits of launched
trainings, checkpoints that let a killed training resume."""

import sys
import types

import pandas as pd
import pytest
from transformers import TrainerCallback

from humpback.datasets import CheckpointHandle
from humpback.hooks import NodeResourceHooks
from humpback.pipelines.training import sft
from humpback.pipelines.training.launch import run_streaming
from humpback.pipelines.training.nodes import prepare_sft_examples
from tests.conftest import HELDOUT_PAIRS
from tests.conftest import params as shipped
from tests.pipelines.training.test_training import TINY as TRAINING_TINY

#: the training tests' tiny block, 4 steps in a fixed order (the resume test compares losses step by step)
TINY = {**TRAINING_TINY, "max_steps": 4, "group_by_length": False}


def training(**changes):
    return shipped("seed_model.training", **{**TINY, **changes})


@pytest.fixture(scope="module")
def pairs(oasst1_messages) -> pd.DataFrame:
    from humpback.data.oasst import select_seed_pairs

    seed, _ = select_seed_pairs(oasst1_messages, ["en"], 0, 20_000, True, 24, 42)
    return seed


def examples_for(pairs, tiny_model_dir, params):
    examples, _ = prepare_sft_examples(
        pairs, CheckpointHandle(str(tiny_model_dir)), params, HELDOUT_PAIRS, shipped("decontamination")
    )
    return examples


def test_gpu_memory_goes_back_to_the_driver_before_the_next_node(monkeypatch):
    calls = []
    cuda = types.SimpleNamespace(is_initialized=lambda: True, empty_cache=lambda: calls.append("empty_cache"))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    NodeResourceHooks().before_node_run(types.SimpleNamespace(name="generate_instructions"), {})
    assert calls == ["empty_cache"]

    cuda.is_initialized = lambda: False  # CUDA never used in this process: nothing to give back, no context made
    NodeResourceHooks().before_node_run(types.SimpleNamespace(name="generate_instructions"), {})
    assert calls == ["empty_cache"]


def test_heldout_loss_is_measured_after_model_and_optimizer_are_prepared_together(
    pairs, tiny_model_dir, tmp_path, monkeypatch
):
    """accelerate's FSDP2 path refuses to prepare a model alone ("a model and optimizer must be passed
    together"), which is what an evaluation before ``train()`` asks of it. The fake refuses likewise."""
    from accelerate import Accelerator

    prepare_model = Accelerator.prepare_model

    def fsdp2_like(self, model, device_placement=None, evaluation_mode=False):
        if evaluation_mode and not self._models:
            raise ValueError("a model and optimizer must be passed together (fake FSDP2)")
        return prepare_model(self, model, device_placement=device_placement, evaluation_mode=evaluation_mode)

    monkeypatch.setattr(Accelerator, "prepare_model", fsdp2_like)
    params = training(checkpoint_steps=None)
    _, _, summary = sft.fit_sft(examples_for(pairs, tiny_model_dir, params), str(tiny_model_dir), params)
    assert summary["heldout_examples"] == 2
    assert summary["heldout_loss_after"] < summary["heldout_loss_before"]  # both measured, before is step 0


def test_an_in_process_training_uses_one_device_whatever_it_sees(tmp_path):
    config = sft.sft_config(training(), 40, processes=1, output_dir=str(tmp_path), evaluate=False)
    config._n_gpu = 8  # what transformers sets in one process on a node of 8 visible GPUs
    assert sft.one_device_per_process(config).n_gpu == 1
    assert config.train_batch_size == config.per_device_train_batch_size  # no DataParallel-sized batch


def test_the_devices_and_process_group_are_set_up_before_the_weights_load(pairs, tiny_model_dir, tmp_path, monkeypatch):
    """FSDP's RAM-efficient loading (only rank 0 reads the weights) needs the process group first."""
    from accelerate.state import PartialState

    PartialState._reset_state()
    seen = []
    load = sft.load_trainable_model

    def spy(model_path, params):
        seen.append(bool(PartialState._shared_state))
        return load(model_path, params)

    monkeypatch.setattr(sft, "load_trainable_model", spy)
    params = training()
    sft.build_trainer(examples_for(pairs, tiny_model_dir, params), str(tiny_model_dir), params, str(tmp_path))
    assert seen == [True]


@pytest.mark.parametrize("enabled", [False, True])
def test_gradient_checkpointing_is_a_parameter(tmp_path, enabled):
    config = sft.sft_config(training(gradient_checkpointing=enabled), 40, 1, str(tmp_path), evaluate=True)
    assert config.gradient_checkpointing is enabled and config.eval_on_start


def test_gpu_environments_checkpoint_their_models_and_save_activation_memory():
    for env in ("nothumpback_m1", "nothumpback_m1_rw_f_8b", "paper"):
        for model in ("backward_model", "seed_model", "m1", "m2"):
            block = shipped(f"{model}.training", env=env)
            assert block.gradient_checkpointing and block.checkpoint_steps, (env, model)


def test_trackers_are_a_parameter(tmp_path):
    assert sft.sft_config(training(), 40, 1, str(tmp_path), False).report_to == []
    assert sft.sft_config(training(report_to=["tensorboard"]), 40, 1, str(tmp_path), False).report_to == ["tensorboard"]


class KillAt(TrainerCallback):
    """Stops the process's training at a step, as a kill would (after the checkpoint of that step)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt(f"killed at step {self.step}")


def test_a_killed_training_resumes_from_its_last_checkpoint(pairs, tiny_model_dir, tmp_path, monkeypatch):
    params = training(checkpoint_steps=2, checkpoint_dir=str(tmp_path / "checkpoints"), heldout_examples=0)
    examples = examples_for(pairs, tiny_model_dir, params)
    _, uninterrupted, _ = sft.fit_sft(
        examples, str(tiny_model_dir), params.model_copy(update={"checkpoint_steps": None})
    )

    build = sft.build_trainer

    def killed_at_3(*args):
        trainer, sizes = build(*args)
        trainer.add_callback(KillAt(3))
        return trainer, sizes

    monkeypatch.setattr(sft, "build_trainer", killed_at_3)
    with pytest.raises(KeyboardInterrupt):
        sft.fit_sft(examples, str(tiny_model_dir), params)
    folder = sft.checkpoint_folder(examples, str(tiny_model_dir), params)
    assert [p.name for p in folder.iterdir() if p.name.startswith("checkpoint-")] == ["checkpoint-2"]

    monkeypatch.setattr(sft, "build_trainer", build)
    _, resumed, summary = sft.fit_sft(examples, str(tiny_model_dir), params)
    assert summary["resumed_from_step"] == 2 and summary["steps"] == 4
    # the same optimizer state and data order: steps 3 and 4 lose what the uninterrupted run lost
    after = resumed.loc[resumed["step"] > 2, "loss"].to_numpy()
    assert after == pytest.approx(uninterrupted.loc[uninterrupted["step"] > 2, "loss"].to_numpy(), rel=1e-4)

    sft.discard_checkpoints(examples, str(tiny_model_dir), params)
    assert not folder.exists()
    other = sft.checkpoint_folder(examples.head(len(examples) - 1), str(tiny_model_dir), params)
    assert other != folder  # other examples: another job, never resumed from this one's checkpoints


def test_a_launched_training_streams_its_output_and_stops_at_its_time_limit(caplog):
    caplog.set_level("INFO", logger="humpback.pipelines.training.launch")
    code, tail = run_streaming([sys.executable, "-c", "print('step 1 of 9', flush=True); print('step 2 of 9')"], 60)
    assert code == 0 and tail == ["step 1 of 9", "step 2 of 9"]
    assert "[training] step 1 of 9" in caplog.text

    slow = "import time; print('loading', flush=True); time.sleep(60)"
    code, tail = run_streaming([sys.executable, "-c", slow], timeout_s=1)
    assert code != 0 and tail[0] == "loading" and "launch_timeout_s" in tail[-1]


@pytest.mark.parametrize("train_embeddings", [False, True])
def test_gradient_checkpointing_trains_with_frozen_or_trained_embeddings(pairs, tiny_model_dir, train_embeddings):
    """Frozen embeddings give checkpointed blocks inputs that need no gradient: training must still
    reach every other weight (the GPU environments checkpoint activations)."""
    params = training(gradient_checkpointing=True, train_embeddings=train_embeddings, checkpoint_steps=None)
    trainer, _, summary = sft.fit_sft(examples_for(pairs, tiny_model_dir, params), str(tiny_model_dir), params)
    assert summary["heldout_loss_after"] < summary["heldout_loss_before"]
    assert trainer.model.is_gradient_checkpointing


def test_a_trained_model_is_saved_in_its_base_models_dtype(pairs, tiny_model_dir):
    """bf16_mixed trains fp32 master weights; the checkpoint keeps the base model's bf16 (half the
    disk, and what vLLM loads anyway), unless the base itself is fp32."""
    import torch

    from humpback.pipelines.training.nodes import train_model

    params = training(precision="bf16_mixed", max_steps=1, heldout_examples=0, checkpoint_steps=None)
    examples = examples_for(pairs, tiny_model_dir, params)
    for dtype, expected in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        base = CheckpointHandle(str(tiny_model_dir), {"dtype": dtype, "model_id": "tiny"})
        artifacts, _, _ = train_model(examples, base, params)
        assert {p.dtype for p in artifacts.model.parameters()} == {expected}
