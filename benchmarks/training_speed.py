"""Training-speed levers on the base model, as ratios taken in one run.

Times optimizer steps of the project's own trainer (``build_trainer``) on real seed examples, for
each configuration below, after one warm-up step; reports seconds per step, completion tokens per
second and peak memory, relative to the first configuration. Run after the ingestion and
base_model pipelines:

    .venv/bin/python benchmarks/training_speed.py        # writes benchmarks/training_speed.md
"""

from __future__ import annotations

import gc
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
import trl.trainer.utils as trl_utils
from transformers import AutoTokenizer, TrainerCallback
from trl.kernels import chunked_logprob

from humpback.params import TrainingParams, project_parameters
from humpback.pipelines.training.examples import build_examples
from humpback.pipelines.training.sft import build_trainer

ROOT = Path(__file__).resolve().parents[1]
BASE = ROOT / "data/06_models/base_model"
STEPS = 3  # the first is a warm-up
DIRECTIONS = ("forward", "backward")
COMMON = dict(
    max_length=384,
    overlong="truncate",
    batch_size=8,
    per_device_train_batch_size=4,
    max_steps=STEPS,
    heldout_examples=0,
    logging_steps=1,
    learning_rate=5e-5,
)
#: name -> (training parameters, whether the output layer sees only label positions)
CONFIGS = {
    "previous default: every position through the output layer, random batches, pure bf16, embeddings trained": (
        dict(precision="bf16", train_embeddings=True, group_by_length=False),
        False,
    ),
    "+ label positions only": (dict(precision="bf16", train_embeddings=True, group_by_length=False), True),
    "+ length-grouped batches": (dict(precision="bf16", train_embeddings=True, group_by_length=True), True),
    "+ fp32 weights, bf16 autocast (correct small updates)": (
        dict(precision="bf16_mixed", train_embeddings=True),
        True,
    ),
    "+ embeddings frozen (the CPU default)": (dict(precision="bf16_mixed", train_embeddings=False), True),
    "CPU default with one micro-batch of 8 instead of 2 × 4": (
        dict(precision="bf16_mixed", train_embeddings=False, per_device_train_batch_size=8),
        True,
    ),
    "CPU default with 4 micro-batches of 2": (
        dict(precision="bf16_mixed", train_embeddings=False, per_device_train_batch_size=2),
        True,
    ),
    "CPU default with 8 micro-batches of 1": (
        dict(precision="bf16_mixed", train_embeddings=False, per_device_train_batch_size=1),
        True,
    ),
    "CPU default with LoRA r=16 all-linear": (
        dict(precision="bf16_mixed", train_embeddings=False, method="lora", lora={"r": 16, "alpha": 32}),
        True,
    ),
}


class StepTimer(TrainerCallback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_begin(self, args, state, control, **kwargs):
        self._start = time.perf_counter()

    def on_step_end(self, args, state, control, **kwargs):
        self.times.append(time.perf_counter() - self._start)


def measure(examples: pd.DataFrame, params: TrainingParams, label_positions_only: bool) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        trainer, sizes = build_trainer(examples, str(BASE), params, folder)
        if not label_positions_only:  # undo what build_trainer did: TRL's own choice on CPU
            trl_utils._use_triton = chunked_logprob._use_triton
        timer = StepTimer()
        trainer.add_callback(timer)
        trainer.train()
        logged = [entry["num_tokens"] for entry in trainer.state.log_history if "num_tokens" in entry]
        tokens = logged[-1] - logged[0]  # tokens of the timed steps (prompt and completion)
    del trainer
    gc.collect()
    per_step = sum(timer.times[1:]) / (STEPS - 1)
    return {
        "s_per_step": per_step,
        "tok_s": tokens / (per_step * (STEPS - 1)),
        "trainable_M": sizes["trainable_parameters"] / 1e6,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
    }


def main() -> None:
    torch.manual_seed(0)
    pairs = pd.read_parquet(ROOT / "data/03_primary/seed_pairs.parquet")
    tokenizer = AutoTokenizer.from_pretrained(BASE)
    results = {}
    cases = [(direction, name) for direction in DIRECTIONS for name in CONFIGS]
    chosen = [cases[int(i)] for i in sys.argv[1:]] or cases  # optional case numbers, to run a few
    for direction, name in chosen:
        overrides, label_positions_only = CONFIGS[name]
        project = project_parameters(conf_source=str(ROOT / "conf"))
        shipped = project["seed_model"].training.model_dump()
        params = TrainingParams.model_validate(shipped | COMMON | overrides | {"direction": direction})
        examples, _ = build_examples(pairs, tokenizer, params, [], project["decontamination"])
        results[f"{direction}: {name}"] = measure(examples, params, label_positions_only)
        print(f"{direction}: {name}: {results[f'{direction}: {name}']}", flush=True)
    first = {d: next(v for k, v in results.items() if k.startswith(d)) for d in DIRECTIONS}
    lines = [
        "# Training speed on the base model",
        "",
        f"`python benchmarks/training_speed.py`, {platform.machine()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}. Base model: {json.loads((BASE / 'humpback.json').read_text())['model_id']}. "
        f"Real seed pairs, batch 8 (2 × 4), max_length 384, {STEPS - 1} timed optimizer steps after a warm-up. "
        "TRL computes logits only at completion positions in every row (its fused LM head). Peak RSS is the "
        "process's high-water mark so far (it only grows down the table).",
        "",
        "| direction: configuration | s / step | speed vs first | tokens / s | trainable M | peak RSS GiB |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        ratio = first[key.split(":")[0]]["s_per_step"] / r["s_per_step"]
        lines.append(
            f"| {key} | {r['s_per_step']:.1f} | {ratio:.2f}× | {r['tok_s']:.0f} | "
            f"{r['trainable_M']:.0f} | {r['peak_rss_gib']:.1f} |"
        )
    (ROOT / "benchmarks/training_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
