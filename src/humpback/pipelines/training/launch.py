"""Training in launched processes (``torchrun`` / ``accelerate launch``), for more than one device.

The node writes the examples and the parameters to a work folder and starts the launcher on this
module; every process trains its part (DDP, or DeepSpeed/FSDP through an accelerate config) and
takes part in saving (FSDP and DeepSpeed gather the sharded weights collectively; the main process
writes), rank 0 adds the loss curve and summary, and the node loads them back, LoRA adapters
merged, so the saved checkpoint is the same as with ``in_process``. The launcher runs with this interpreter
(``python -m torch.distributed.run`` is ``torchrun``), so it uses the project's environment.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import resource
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import pandas as pd

from humpback.llm import load_tokenizer
from humpback.params import TrainingParams

logger = logging.getLogger(__name__)

ENTRY = "humpback.pipelines.training.launch"


class LaunchError(RuntimeError):
    """The launched training failed; its output is in the message."""


def launcher_command(params: TrainingParams, work: Path) -> list[str]:
    processes = str(params.processes)
    if params.launcher == "torchrun":
        launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", processes]
    else:
        launcher = ["-m", "accelerate.commands.launch", "--num_processes", processes]
    return [sys.executable, *launcher, *params.launcher_args, "-m", ENTRY, str(work)]


def run_streaming(command: list[str], timeout_s: float | None, keep_lines: int = 200) -> tuple[int, list[str]]:
    """Run ``command``, logging its output line by line as it comes (a multi-hour training shows its
    progress), and stop it after ``timeout_s``. Returns its exit code and its last ``keep_lines`` lines."""
    tail: collections.deque[str] = collections.deque(maxlen=keep_lines)
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    timer = threading.Timer(timeout_s, _stop, args=(process, tail)) if timeout_s else None
    if timer:
        timer.start()
    try:
        for line in process.stdout:
            line = line.rstrip()
            tail.append(line)
            logger.info("[training] %s", line)
        process.wait()
    finally:
        if timer:
            timer.cancel()
        if process.poll() is None:  # the node was interrupted: do not leave the processes behind
            _stop(process, tail)
    return process.returncode, list(tail)


def _stop(process: subprocess.Popen, tail: collections.deque) -> None:
    tail.append("humpback: stopped (training.launch_timeout_s reached, or the run was interrupted)")
    process.terminate()  # torchrun and accelerate pass it on to their workers
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def train_launched(
    examples: pd.DataFrame, model_path: str, params: TrainingParams
) -> tuple[Any, Any, pd.DataFrame, dict]:
    """Like :func:`~humpback.pipelines.training.sft.train_sft`, in ``params.nproc_per_node`` processes."""
    with tempfile.TemporaryDirectory(prefix="humpback-launch-") as folder:
        work = Path(folder)
        run_launched(examples, model_path, params, work, per_example_heldout=False, save_model=True)
        return (*load_launched_model(work, params), pd.read_csv(work / "loss_curve.csv"), read_summary(work))


def launched_summary(examples: pd.DataFrame, model_path: str, params: TrainingParams) -> dict:
    """A launched training's summary with each held-out example's loss; the model is not loaded (a
    learning-rate sweep only compares the rates)."""
    with tempfile.TemporaryDirectory(prefix="humpback-launch-") as folder:
        work = Path(folder)
        run_launched(examples, model_path, params, work, per_example_heldout=True, save_model=False)
        return read_summary(work)


def read_summary(work: Path) -> dict:
    """Rank 0's summary, with every rank's peak resident memory (``peak_rss_mib_by_rank``): host
    memory on ranks other than 0 is what a node with eight processes multiplies."""
    summary = json.loads((work / "summary.json").read_text())
    peaks = {}
    for path in sorted(work.glob("rank*_peak_rss_mib.txt")):
        peaks[path.name.removeprefix("rank").split("_")[0]] = round(float(path.read_text()))
    return summary | {"peak_rss_mib_by_rank": dict(sorted(peaks.items(), key=lambda item: int(item[0])))}


def run_launched(
    examples: pd.DataFrame,
    model_path: str,
    params: TrainingParams,
    work: Path,
    per_example_heldout: bool,
    save_model: bool,
) -> None:
    """Train in launched processes; the loss curve, the summary and (``save_model``) the model land
    in ``work``."""
    examples.to_parquet(work / "examples.parquet", index=False)
    job = {
        "model_path": model_path,
        "params": params.model_dump(mode="json"),
        "per_example_heldout": per_example_heldout,
        "save_model": save_model,
    }
    (work / "job.json").write_text(json.dumps(job))
    command = launcher_command(params, work)
    logger.info("launching training: %s", " ".join(command))
    returncode, tail = run_streaming(command, params.launch_timeout_s)
    if returncode != 0 or not (work / "summary.json").is_file():  # written last, by rank 0
        raise LaunchError(f"launched training failed (exit {returncode}):\n" + "\n".join(tail))


def load_launched_model(work: Path, params: TrainingParams) -> tuple[Any, Any]:
    """The launched training's model (LoRA adapters merged) and tokenizer, from ``work``."""
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if params.precision == "bf16" else torch.float32
    if params.method == "lora":
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(work / "model", dtype=dtype).merge_and_unload()
    else:
        model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=dtype)
    return model, load_tokenizer(work / "model")


def main(work: Path) -> None:
    """One launched process: train, save with the others (a LoRA run saves its adapter: merging a
    sharded model is left to the node); rank 0 writes the loss curve and summary into ``work``."""
    from humpback.pipelines.training.sft import fit_sft

    job = json.loads((work / "job.json").read_text())
    params = TrainingParams.model_validate(job["params"])
    examples = pd.read_parquet(work / "examples.parquet")
    trainer, curve, summary = fit_sft(examples, job["model_path"], params, job["per_example_heldout"])
    if job["save_model"]:
        trainer.save_model(str(work / "model"))  # on every process: only the main one writes
    rank = int(os.environ.get("RANK", "0"))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    (work / f"rank{rank}_peak_rss_mib.txt").write_text(f"{peak_mib:.0f}")
    if rank == 0:
        curve.to_csv(work / "loss_curve.csv", index=False)
        (work / "summary.json").write_text(json.dumps(summary))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main(Path(sys.argv[1]))
