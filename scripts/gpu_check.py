"""The GPU check: what only a GPU can show about the GPU environments, in a few minutes, offline.

Run by ``scripts/gpu_check.sh`` on a GPU machine (models are built from configs; no Hub, no vLLM,
no Kedro), or with ``--device cpu --quick`` here, where the test suite runs its CPU-runnable parts.
Each check is independent: a failure is recorded with its traceback and the next one runs. The
results are written after every check to one JSON file, so a run cut short keeps what it finished.

Checks:
- ``backend_parity``: the transformers backend on the device against the same model on the CPU:
  greedy generation with a stop string, option probabilities, completion log-probabilities;
- ``training``: an in-process ``bf16_mixed`` training of a Llama-3-shaped stand-in, then the memory
  given back for the next stage (``humpback.engine.memory.release_free_memory``);
- ``optimizer_step``: one AdamW step of the Llama-3.2-3B shape (``conf/nothumpback_m1``'s
  ``plan.model_shape``) at the configured micro-batch and length, with and without activation
  checkpointing: peak memory against the plan's estimate, and training tokens/s and TFLOP/s;
- ``prefill``: forward-only tokens/s and TFLOP/s of the same shape in bf16 (a lower bound of
  vLLM's prefill);
- ``fsdp2_launch``: ``accelerate launch`` of one FSDP2 process with held-out examples, through the
  project's launcher (the held-out loss is measured inside ``train()``);
- ``seeded_sampling``: one decode step of vLLM's sampler with and without per-request seeds, rebuilt
  from its code (vLLM is not on the GPU machine), on a full batch of Llama 3's vocabulary.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import math
import os
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

GIB = 2**30


def conf_block(path: str, *keys: str) -> dict:
    """A parameter block read with PyYAML (no Kedro on a GPU machine); ``<<`` merges are resolved,
    and ``${globals:name}`` values are read from conf/base/globals.yml, as Kedro reads them."""
    import yaml

    value = yaml.safe_load((ROOT / "conf" / path).read_text())
    for key in keys:
        value = value[key]
    return _with_globals(value, yaml.safe_load((ROOT / "conf/base/globals.yml").read_text()))


def _with_globals(value, known: dict):
    if isinstance(value, dict):
        return {key: _with_globals(item, known) for key, item in value.items()}
    if isinstance(value, str) and value.startswith("${globals:") and value.endswith("}"):
        return known[value.removeprefix("${globals:").removesuffix("}")]
    return value


def llm_config(**changes):
    from humpback.llm import LLMConfig

    return LLMConfig.model_validate({**conf_block("base/parameters/engine.yml", "llm"), **changes})


def training_params(**changes):
    from humpback.params import TrainingParams

    return TrainingParams.model_validate(
        {**conf_block("base/parameters/training.yml", "seed_model", "training"), **changes}
    )


def corpus() -> list[str]:
    """Text to train the stand-in's tokenizer on: this repository's own prose (no data on the machine)."""
    texts = [path.read_text(encoding="utf-8") for path in sorted(ROOT.glob("**/*.md")) if ".venv" not in path.parts]
    return [paragraph for text in texts for paragraph in text.split("\n\n") if paragraph.strip()]


#: where the run's stand-in model is built, once (``main`` sets it)
STANDIN_DIR: Path | None = None


@functools.cache
def stand_in_model() -> str:
    """A Llama-3-shaped stand-in, materialised as the base_model pipeline saves it (prompt format,
    stop token): what stages read. Built once a run; the checks that need it share it."""
    from humpback.datasets.checkpoint import write_checkpoint
    from humpback.params import ModelSourceParams
    from humpback.pipelines.base_model.nodes import materialise_base_model
    from tests.standins import build_llama3_standins

    base, _ = build_llama3_standins(STANDIN_DIR / "standins", corpus())
    source = {**conf_block("base/parameters/models.yml", "base_model"), "source": "local", "name_or_path": str(base)}
    path = STANDIN_DIR / "base_model"
    write_checkpoint(path, materialise_base_model(ModelSourceParams.model_validate({**source, "dtype": "float32"})))
    return str(path)


def check_backend_parity(device: str, work: Path, quick: bool) -> dict:
    import numpy as np
    import torch

    from humpback.llm import SamplingConfig, build_llm

    model_path = stand_in_model()
    prompts = ["The tide comes in and", "A short note about the sea:", "Write a list of three colours."]
    sampling = SamplingConfig(temperature=0, top_p=1.0, max_new_tokens=16, stop=["\n\n"], seed=None)
    config = llm_config(backend="transformers", dtype="float32", show_progress=False)
    results = {}
    for where in ("device", "cpu"):
        available = torch.cuda.is_available
        if where == "cpu":
            torch.cuda.is_available = lambda: False  # the backend picks CUDA whenever it can
        try:
            with build_llm(config, model_path) as lm:
                results[where] = {
                    "device": lm.device,
                    "texts": lm.generate(prompts, sampling),
                    "options": lm.score_options(prompts, ["1", "2", "3"]),
                    "logprobs": lm.completion_logprobs(prompts, ["the end.", "salt water.", "red, blue, green"]),
                }
        finally:
            torch.cuda.is_available = available
    on_device, on_cpu = results["device"], results["cpu"]
    return {
        "devices": [on_device["device"], on_cpu["device"]],
        "same_greedy_texts": sum(a == b for a, b in zip(on_device["texts"], on_cpu["texts"])),
        "texts": len(prompts),
        "option_probability_max_abs_diff": float(np.abs(on_device["options"] - on_cpu["options"]).max()),
        "completion_logprob_max_abs_diff": float(
            max(np.abs(a - b).max() for a, b in zip(on_device["logprobs"], on_cpu["logprobs"]))
        ),
        "example_text": on_device["texts"][0],
    }


def synthetic_pairs(n: int):
    import pandas as pd

    paragraphs = [p[:600] for p in corpus() if len(p) > 80][: 2 * n]
    return pd.DataFrame(
        {
            "instruction": [f"Explain this part of the project's notes (part {i})." for i in range(n)],
            "response": paragraphs[:n],
            "source": "seed",
            "prompt_message_id": [f"p{i}" for i in range(n)],
            "message_tree_id": [f"t{i}" for i in range(n)],
        }
    )


def examples(model_path: str, params, n: int):
    from humpback.llm import load_tokenizer
    from humpback.params import DecontaminationParams
    from humpback.pipelines.training.examples import build_examples

    decontamination = DecontaminationParams.model_validate(
        conf_block("base/parameters/training.yml", "decontamination")
    )
    return build_examples(synthetic_pairs(n), load_tokenizer(model_path), params, [], decontamination)[0]


def check_training(device: str, work: Path, quick: bool) -> dict:
    import torch

    from humpback.engine.memory import release_free_memory
    from humpback.pipelines.training.sft import train_sft

    model_path = stand_in_model()
    params = training_params(
        precision="bf16_mixed", max_steps=4, heldout_examples=4, checkpoint_steps=None, max_length=256, batch_size=4,
        per_device_train_batch_size=4, learning_rate=1e-3, logging_steps=1,
    )  # fmt: skip
    model, _, curve, summary = train_sft(examples(model_path, params, 24), model_path, params)
    on_gpu = torch.cuda.is_available()
    held = torch.cuda.memory_allocated() / GIB if on_gpu else math.nan
    del model
    release_free_memory()
    return {
        "steps": summary["steps"],
        "heldout_loss_before": summary["heldout_loss_before"],
        "heldout_loss_after": summary["heldout_loss_after"],
        "loss_curve": curve["loss"].round(4).tolist(),
        "allocated_gib_with_model": held,
        "allocated_gib_after_release": torch.cuda.memory_allocated() / GIB if on_gpu else math.nan,
        "reserved_gib_after_release": torch.cuda.memory_reserved() / GIB if on_gpu else math.nan,
    }


def shape_config(quick: bool):
    from transformers import LlamaConfig

    shape = conf_block("nothumpback_m1/parameters.yml", "plan", "model_shape")
    if quick:  # CPU: the same kind of model, small
        shape = {**shape, "layers": 2, "hidden_size": 256, "intermediate_size": 512, "attention_heads": 4,
                 "kv_heads": 2, "head_dim": 64, "vocab_size": 4096}  # fmt: skip
    config = LlamaConfig(
        vocab_size=shape["vocab_size"],
        hidden_size=shape["hidden_size"],
        intermediate_size=shape["intermediate_size"],
        num_hidden_layers=shape["layers"],
        num_attention_heads=shape["attention_heads"],
        num_key_value_heads=shape["kv_heads"],
        head_dim=shape["head_dim"],
        tie_word_embeddings=shape["tied_embeddings"],
        max_position_embeddings=4096,
    )
    return config, {**shape, "shape_from": "parameters"}


def check_optimizer_step(device: str, work: Path, quick: bool) -> dict:
    import torch
    from transformers import LlamaForCausalLM

    from humpback.pipelines.plan.nodes import _training_memory, parameter_count

    config, shape = shape_config(quick)
    block = conf_block("nothumpback_m1/parameters.yml", "m1", "training")
    batch, length = (2, 128) if quick else (block.get("per_device_train_batch_size", 8), block.get("max_length", 2048))
    results = {"batch": batch, "length": length, "parameters_b": parameter_count(shape)[0] / 1e9}
    for checkpointing in (True, False):
        key = "checkpointing" if checkpointing else "no_checkpointing"
        torch.manual_seed(0)
        with torch.device(device):  # built where it trains: no 13 GB copy through host memory
            model = LlamaForCausalLM(config)
        model.get_input_embeddings().weight.requires_grad_(False)  # train_embeddings: false, as configured
        if checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
        ids = torch.randint(0, config.vocab_size, (batch, length), device=device)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        timings = []
        try:
            for _ in range(3):  # the first step allocates the optimizer's states; the last two are timed
                start = time.perf_counter()
                with torch.autocast(device, dtype=torch.bfloat16):
                    loss = model(input_ids=ids, labels=ids).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                if device == "cuda":
                    torch.cuda.synchronize()
                timings.append(time.perf_counter() - start)
            tokens_per_s = batch * length / (sum(timings[1:]) / 2)
            flops_per_token = (8 if checkpointing else 6) * results["parameters_b"] * 1e9
            results[key] = {
                "peak_gib": torch.cuda.max_memory_allocated() / GIB if device == "cuda" else math.nan,
                "tokens_per_s": tokens_per_s,
                "train_tflops": tokens_per_s * flops_per_token / 1e12,
            }
        except torch.OutOfMemoryError as error:
            results[key] = {"out_of_memory": str(error).splitlines()[0]}
        del model, optimizer
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
        params = training_params(**{k: v for k, v in block.items() if k in ("precision", "max_length")})
        params = params.model_copy(update={"gradient_checkpointing": checkpointing, "max_length": length})
        results[key]["plan_estimate_gib"] = _training_memory(params, shape, batch, 1, sharded=False)
    return results


def check_prefill(device: str, work: Path, quick: bool) -> dict:
    import torch
    from transformers import LlamaForCausalLM

    from humpback.pipelines.plan.nodes import parameter_count

    config, shape = shape_config(quick)
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype=dtype).eval()
    batch, length = (2, 128) if quick else (8, 2048)
    ids = torch.randint(0, config.vocab_size, (batch, length), device=device)
    timings = []
    with torch.inference_mode():
        for _ in range(3):
            start = time.perf_counter()
            model(input_ids=ids, logits_to_keep=1)
            if device == "cuda":
                torch.cuda.synchronize()
            timings.append(time.perf_counter() - start)
    tokens_per_s = batch * length / (sum(timings[1:]) / 2)
    del model
    gc.collect()
    return {
        "tokens_per_s": tokens_per_s,
        "prefill_tflops": tokens_per_s * 2 * parameter_count(shape)[0] / 1e12,
        "dtype": str(dtype),
    }


def check_fsdp2_launch(device: str, work: Path, quick: bool) -> dict:
    import yaml

    from humpback.pipelines.training.launch import train_launched

    model_path = stand_in_model()
    accelerate_config = conf_block("accelerate/fsdp_8gpu.yaml")
    accelerate_config.update(num_processes=1, mixed_precision="bf16" if device == "cuda" else "no")
    if device != "cuda":
        accelerate_config["use_cpu"] = True
    config_file = work / "fsdp_1process.yaml"
    config_file.write_text(yaml.safe_dump(accelerate_config))
    params = training_params(
        launcher="accelerate", nproc_per_node=1, launcher_args=["--config_file", str(config_file)],
        precision="bf16_mixed" if device == "cuda" else "fp32", max_steps=2, heldout_examples=4,
        checkpoint_steps=None, max_length=256, batch_size=4, per_device_train_batch_size=4, launch_timeout_s=240,
    )  # fmt: skip
    _, _, curve, summary = train_launched(examples(model_path, params, 16), model_path, params)
    return {key: summary[key] for key in ("steps", "processes", "heldout_loss_before", "heldout_loss_after")}


def check_seeded_sampling(device: str, work: Path, quick: bool) -> dict:
    """What per-request seeds cost vLLM's sampler at one decode step, rebuilt from its code (vLLM
    itself is not on the GPU machine): a batch with any seeded request leaves FlashInfer's fused
    top-k/top-p sampler for the PyTorch-native one (a sort over the vocabulary), and draws each
    seeded row's exponential noise from its own generator, one row at a time
    (``vllm/v1/sample/ops/topk_topp_sampler.py``: ``forward_cuda`` → ``forward_native``,
    ``random_sample``). Timed here: the native path with batched noise (what unseeded requests get
    when FlashInfer is not used) and with per-row seeded noise; the fused path cannot be timed
    without FlashInfer, so its cost is the decode step's forward, which ``prefill`` bounds."""
    import torch

    rows, vocab = (8, 4096) if quick else (256, 128256)  # a full decode batch of Llama 3's vocabulary
    logits = torch.randn(rows, vocab, device=device, dtype=torch.float32)
    top_p = torch.full((rows,), 0.9, device=device)
    generators = [torch.Generator(device=device).manual_seed(seed) for seed in range(rows)]

    def native_top_p(logits: torch.Tensor) -> torch.Tensor:
        ordered, index = logits.sort(dim=-1, descending=False)
        cumulative = ordered.softmax(dim=-1).cumsum(dim=-1)
        ordered = ordered.masked_fill(cumulative <= 1 - top_p.unsqueeze(1), -float("inf"))
        return torch.empty_like(logits).scatter_(-1, index, ordered).softmax(dim=-1)

    def step(seeded: bool) -> torch.Tensor:
        probs = native_top_p(logits)
        noise = torch.empty_like(probs)
        if seeded:
            for row, generator in enumerate(generators):
                noise[row].exponential_(generator=generator)
        else:
            noise.exponential_()
        return probs.div(noise).argmax(dim=-1)

    def timed(seeded: bool, repeats: int = 5) -> float:
        step(seeded)  # warm-up
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(repeats):
            step(seeded)
        if device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / repeats

    unseeded, seeded = timed(False), timed(True)
    return {
        "rows": rows,
        "vocab": vocab,
        "native_unseeded_ms": unseeded * 1e3,
        "native_seeded_ms": seeded * 1e3,
        "seeded_over_unseeded": seeded / unseeded,
    }


CHECKS = {
    "backend_parity": check_backend_parity,
    "training": check_training,
    "optimizer_step": check_optimizer_step,
    "prefill": check_prefill,
    "fsdp2_launch": check_fsdp2_launch,
    "seeded_sampling": check_seeded_sampling,
}


def environment() -> dict:
    import torch
    import transformers

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=properties.name, gpu_memory_gib=properties.total_memory / GIB, gpus=torch.cuda.device_count())
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--out", type=Path, default=ROOT / "data" / "08_reporting" / "gpu_check.json")
    parser.add_argument("--quick", action="store_true", help="small shapes (a CPU run of the same code)")
    parser.add_argument("--only", nargs="*", choices=list(CHECKS), help="run these checks only")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results: dict = {"environment": environment(), "device": args.device, "quick": args.quick}
    failed = 0
    global STANDIN_DIR
    shared = tempfile.TemporaryDirectory(prefix="gpu-check-standin-")
    STANDIN_DIR = Path(shared.name)
    for name in args.only or CHECKS:
        start = time.perf_counter()
        print(f"== {name}", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as folder:
            try:
                results[name] = CHECKS[name](args.device, Path(folder), args.quick)
            except Exception as error:  # recorded; the next check still runs
                failed += 1
                results[name] = {"error": repr(error), "traceback": traceback.format_exc().splitlines()[-12:]}
        results[name]["seconds"] = round(time.perf_counter() - start, 1)
        print(json.dumps({name: results[name]}, default=str), flush=True)
        args.out.write_text(json.dumps(results, indent=2, default=str))
    shared.cleanup()
    print(f"gpu check: {len(results) - 3 - failed} passed, {failed} failed; results in {args.out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
