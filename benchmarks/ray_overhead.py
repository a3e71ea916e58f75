"""Ray's fixed cost on one machine: the same small augmentation stage, ``local`` vs ``ray``, in one run.

    python benchmarks/ray_overhead.py [--model data/06_models/aligned_model] [--documents 1]

Needs the ingestion outputs and a model checkpoint (the base model after any offline run) and the
``ray`` extra. One process runs, in order: local (a warm-up, not reported), ray (the first Ray stage
of a run: the local cluster starts and the actors load the model), ray again (a later stage: only
the actors start), local. With one document the difference is the fixed cost. Writes
``benchmarks/ray_overhead.md``.
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.engine.runner import run_model_task
from humpback.params import project_parameters
from humpback.pipelines.augmentation.nodes import instruction_task

ROOT = Path(__file__).resolve().parent.parent
RAY = {"num_cpus": 2, "num_actors": 2, "cpus_per_actor": 0.5, "threads_per_actor": 1, "timeout_s": 600}


def _timed_stage(documents: pd.DataFrame, engine: str, model: str, parameters: dict) -> float:
    llm = parameters["llm"].model_copy(
        update={"backend": "transformers", "show_progress": False, "num_threads": 1 if engine == "ray" else None}
    )
    ray = parameters["generation"].ray.model_copy(update=RAY)
    run = parameters["generation"].model_copy(update={"engine": engine, "shard_dir": None, "ray": ray})
    start = time.perf_counter()
    run_model_task(instruction_task(parameters["augmentation"]), documents, CheckpointHandle(model), llm, run)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "data/06_models/aligned_model"))
    parser.add_argument("--documents", type=int, default=1)
    args = parser.parse_args()
    documents = pd.read_parquet(ROOT / "data/03_primary/web_documents.parquet").head(args.documents)
    parameters = project_parameters(conf_source=str(ROOT / "conf"))

    _timed_stage(documents, "local", args.model, parameters)  # warm-up: imports and file cache
    first_ray = _timed_stage(documents, "ray", args.model, parameters)
    later_ray = _timed_stage(documents, "ray", args.model, parameters)
    local = _timed_stage(documents, "local", args.model, parameters)
    rows = [
        ("first Ray stage of a run (cluster start + actors)", first_ray, first_ray - local, first_ray / local),
        ("later Ray stage (actors start)", later_ray, later_ray - local, later_ray / local),
    ]
    lines = [
        "# Ray's fixed cost",
        "",
        f"{args.documents} document(s), transformers backend, 2 actors × 1 thread vs one local process; "
        f"{platform.machine()}, {time.strftime('%Y-%m-%d')}. Command: `python benchmarks/ray_overhead.py`.",
        "",
        f"Local stage: {local:.1f} s.",
        "",
        "| case | seconds | added vs local | ratio to local |",
        "| --- | --- | --- | --- |",
        *(f"| {name} | {seconds:.1f} | +{added:.1f} s | {ratio:.1f}× |" for name, seconds, added, ratio in rows),
        "",
    ]
    (ROOT / "benchmarks/ray_overhead.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
