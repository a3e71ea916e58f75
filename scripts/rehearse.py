"""CPU dress rehearsal of a GPU environment: ``iteration1`` and ``evaluation`` end to end with the
environment's own parameters, swapping only sizes, data and models.

    python scripts/rehearse.py nothumpback_m1 [nothumpback_m1_rw_f_8b paper] [--keep DIR]

- Models: Llama-3-shaped stand-ins built offline (``tests/standins.py``): the base (tied embeddings
  for Llama-3.2-3B, untied for Llama-3.1-8B) and an instruct copy with the Llama 3.1 chat template
  as the aligned model.
- Data: the sample exports (``HUMPBACK_SAMPLE_DIR``) through the offline catalog; ~200 documents, a few
  dozen seed pairs, 2 optimizer steps a model.
- Engines: the transformers backend; vLLM's CPU build (AVX2 or AVX-512) with HUMPBACK_REHEARSE_VLLM=1;
  Ray actors where the environment uses Ray; a launched training runs 2 processes over gloo
  (accelerate on a CPU runs DDP: its FSDP path needs GPUs, so the GPU check covers FSDP2).

After the run it checks what a GPU run relies on: BOS once in the prompt ids and in TRL's input
ids, the last label of an answer is the stop token and generation stops on it, score options are
single tokens, every node completed. Prints, and writes to ``<project>/rehearsal.json``, the wall
time and the rows of each dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]

ENVIRONMENTS = ("nothumpback_m1", "nothumpback_m1_rw_f_8b", "paper")
#: the datasets whose rows the rehearsal reports, in run order
DATASETS = (
    "seed_pairs",
    "heldout_pairs",
    "report.heldout_pairs",
    "web_documents",
    "candidates",
    "rated_candidates",
    "iteration1.scored_candidates",
    "iteration1.curated_pairs",
    "iteration1.training_pairs",
    "m1.sft_examples",
    "evaluation.m1.responses",
    "evaluation.m1_vs_m0.judgements",
)
MODELS = ("backward_model", "seed_model", "m1", "m2")


def newest_report(project: Path, name: str) -> Path:
    """The newest version of a run report (reports are versioned: ``<name>/<timestamp>/<name>``)."""
    return sorted((project / "data" / "08_reporting" / name).iterdir())[-1] / name


def make_project(folder: Path, env: str, shared_data: Path) -> Path:
    """The project's configuration in ``folder``, the environment reading the sample exports."""
    from humpback.data.sample import stage_sample_data

    shutil.copytree(ROOT / "conf", folder / "conf", ignore=shutil.ignore_patterns("local"))
    (folder / "conf" / "local").mkdir(exist_ok=True)
    shutil.copy(ROOT / "conf" / "offline" / "catalog.yml", folder / "conf" / env / "catalog.yml")
    shutil.copy(ROOT / "pyproject.toml", folder / "pyproject.toml")
    (folder / "src").mkdir(exist_ok=True)
    stage_sample_data(shared_data, folder / "data" / "01_raw")
    return folder


def overrides(env: str, project: Path, base: Path, instruct: Path) -> dict:
    """Runtime parameters over the environment: its sizes, models and engines swapped for CPU ones."""
    import yaml

    from humpback.params import project_parameters

    shipped = project_parameters(env, str(project / "conf"))
    training = {}
    for model in MODELS:
        block = shipped[model].training
        changes = {
            "max_steps": 2,
            "max_examples": 64,
            "heldout_examples": 4,
            "checkpoint_dir": str(project / "data" / "02_intermediate" / "training"),
        }
        if block.launcher not in ("in_process", "auto"):  # auto: what a CPU decides (one process, in the node)
            changes["nproc_per_node"] = 2
        if "--config_file" in block.launcher_args:  # the environment's accelerate config, for 2 processes
            config_file = project / block.launcher_args[block.launcher_args.index("--config_file") + 1]
            config = yaml.safe_load(config_file.read_text())
            config.update(num_processes=2, mixed_precision="no")
            cpu_config = project / "conf" / "accelerate" / f"cpu_{config_file.name}"
            cpu_config.write_text(yaml.safe_dump(config))
            changes["launcher_args"] = ["--config_file", str(cpu_config)]
        training[model] = {"training": changes}
    from humpback.llm.platform import vllm_problem

    # vLLM's CPU build where asked (HUMPBACK_REHEARSE_VLLM=1) and where it starts: on 2 cores a
    # rehearsal takes ~15 min on it against a few on transformers, so CI rehearses on transformers
    vllm = os.environ.get("HUMPBACK_REHEARSE_VLLM") == "1" and vllm_problem() is None
    generation: dict = {"shard_size": 32}
    if shipped["generation"].engine == "ray":
        generation["ray"] = {"address": None, "num_cpus": 2, "num_actors": 2, "cpus_per_actor": 0.5,
                             "gpus_per_actor": 0, "threads_per_actor": 1, "timeout_s": 1800}  # fmt: skip
    return {
        "base_model": {"source": "local", "name_or_path": str(base), "revision": None},
        "aligned_model": {"source": "local", "name_or_path": str(instruct), "revision": None},
        "ingestion": {
            "seed": {"max_pairs": 48, "heldout_fraction": 0.2},
            "heldout": {"max_prompts": 6},
            "ranked": {"max_prompts": 8},  # every scorer, the generating one too, scores both replies
            "web": {"max_documents": 200},
        },
        **training,
        "llm": {
            "backend": "vllm" if vllm else "transformers",
            "enforce_eager": True,
            "tensor_parallel_size": 1,
            "max_model_len": 2048,
            "batch_token_budget": 8192,
        },  # fmt: skip
        "generation": generation,
        # stand-ins are random: they never write their stop token, and every instruction would be cut
        "augmentation": {"sampling": {"max_new_tokens": 24}, "use_truncated": True},
        "rewriting": {"sampling": {"max_new_tokens": 32}},
        "curation": {"sampling": {"max_new_tokens": 24}, "form_control_candidates": 8},
        "evaluation": {"sampling": {"max_new_tokens": 16}},
    }


def run(project: Path, env: str, pipeline: str, runtime_params: dict) -> None:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(project)
    with (
        contextlib.chdir(project),
        KedroSession.create(project_path=project, env=env, runtime_params=runtime_params) as session,
    ):
        session.run(pipeline_names=[pipeline])


def dataset_rows(project: Path, env: str, runtime_params: dict) -> dict[str, int]:
    from kedro.framework.session import KedroSession

    with (
        contextlib.chdir(project),
        KedroSession.create(project_path=project, env=env, runtime_params=runtime_params) as session,
    ):
        catalog = session.load_context().catalog
        return {name: len(catalog.load(name)) for name in DATASETS if catalog.exists(name)}


def checks(project: Path) -> dict:
    """What a GPU run relies on, read off the rehearsal's own models and training examples."""
    import pandas as pd

    from humpback.llm import load_tokenizer
    from humpback.llm.base import encode_prompt, stop_token_ids
    from humpback.params import TrainingParams
    from humpback.pipelines.training.sft import build_trainer
    from humpback.prompts import forward_chat

    models = project / "data" / "06_models"
    seed_model = str(models / "seed_model")
    tokenizer = load_tokenizer(seed_model)
    prompt_ids = encode_prompt(tokenizer, forward_chat("What is a tide?", "assistant"))
    examples = pd.read_parquet(project / "data" / "05_model_input" / "m1_sft_examples.parquet")
    params = TrainingParams.model_validate(json.loads((models / "m1" / "humpback.json").read_text())["hyperparameters"])
    with tempfile.TemporaryDirectory() as scratch:
        params = params.model_copy(update={"launcher": "in_process", "nproc_per_node": 1, "checkpoint_steps": None})
        trainer, _ = build_trainer(examples, str(models / "base_model"), params, scratch)
        batch = next(iter(trainer.get_train_dataloader()))  # as TRL collates it: input ids and labels
    ids, labels, real = batch["input_ids"][0], batch["labels"][0], batch["attention_mask"][0].bool()
    trained = ids[(labels != -100) & real].tolist()
    stop = stop_token_ids(str(models / "m1"), load_tokenizer(str(models / "m1")))
    options = [tokenizer.encode(option, add_special_tokens=False) for option in ("1", "2", "3", "4", "5")]
    return {
        "bos_in_prompt_ids": prompt_ids.count(tokenizer.bos_token_id),
        "bos_in_trl_input_ids": ids[real].tolist().count(tokenizer.bos_token_id),
        "last_label_is_stop_token": trained[-1] in stop,
        "generation_stop_token_ids": stop,
        "score_options_single_tokens": all(len(ids) == 1 for ids in options),
    }


def rehearse(env: str, folder: Path, shared_data: Path) -> dict:
    import pandas as pd

    from tests.standins import build_llama3_standins

    started = time.perf_counter()
    project = make_project(folder, env, shared_data)
    texts = pd.read_parquet(project / "data" / "01_raw" / "c4_en_documents.parquet")["text"].head(300).tolist()
    base, instruct = build_llama3_standins(project / "standins", texts, tied_embeddings=env != "nothumpback_m1_rw_f_8b")
    runtime_params = overrides(env, project, base, instruct)
    timings = {}
    for pipeline in ("iteration1", "evaluation"):
        start = time.perf_counter()
        run(project, env, pipeline, runtime_params)
        timings[pipeline] = round(time.perf_counter() - start, 1)
    summaries = {
        model: json.loads(newest_report(project, f"{model}_training_summary.json").read_text())
        for model in ("backward_model", "seed_model", "m1")
    }
    result = {
        "environment": env,
        "backend": runtime_params["llm"]["backend"],
        "engine": "ray" if "ray" in runtime_params["generation"] else "local",
        "seconds": {**timings, "total": round(time.perf_counter() - started, 1)},
        "rows": dataset_rows(project, env, runtime_params),
        "training": {
            model: {
                key: summary.get(key)
                for key in ("steps", "processes", "distributed", "batch_size", "peak_rss_mib_by_rank")
            }
            for model, summary in summaries.items()
        },
        "checks": checks(project),
    }
    (project / "rehearsal.json").write_text(json.dumps(result, indent=2))
    return result


def failures(result: dict) -> list[str]:
    checks = result["checks"]
    problems = []
    if checks["bos_in_prompt_ids"] != 1 or checks["bos_in_trl_input_ids"] != 1:
        problems.append("BOS not exactly once")
    if not checks["last_label_is_stop_token"]:
        problems.append("the last label is not the stop token")
    if not checks["score_options_single_tokens"]:
        problems.append("a score option is more than one token")
    return problems


def main() -> int:
    from humpback.data.sample import default_sample_dir

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("environments", nargs="*", default=list(ENVIRONMENTS), choices=ENVIRONMENTS)
    parser.add_argument("--shared-data", type=Path, default=default_sample_dir(ROOT))
    parser.add_argument("--keep", type=Path, help="rehearse in this folder and keep it (default: a temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("KEDRO_DISABLE_TELEMETRY", "true")
    failed = 0
    for env in args.environments:
        with tempfile.TemporaryDirectory(prefix=f"rehearsal-{env}-") as scratch:
            folder = (args.keep / env) if args.keep else Path(scratch)
            if args.keep and folder.exists():
                shutil.rmtree(folder)  # a rehearsal starts from nothing
            folder.mkdir(parents=True, exist_ok=True)
            result = rehearse(env, folder, args.shared_data)
        problems = failures(result)
        failed += bool(problems)
        print(json.dumps(result, indent=2))
        print(
            f"rehearsal {env}: {'FAILED: ' + '; '.join(problems) if problems else 'passed'} in {result['seconds']['total']} s"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
