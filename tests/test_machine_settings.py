"""``auto`` settings decided for the machine before the first node, written where the run records its
parameters; a backend named explicitly that cannot start stops the run in one line; SIGTERM stops a
run without leaving vLLM's processes behind."""

import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from humpback.llm import platform
from humpback.llm.platform import BackendUnavailableError, machine_decisions
from tests.test_run import run


@pytest.fixture
def machine(monkeypatch):
    """A machine whose answers the test sets: ``machine(vllm=..., bf16=...)``."""

    def configure(vllm: str | None, bf16: bool) -> None:
        monkeypatch.setattr(platform, "vllm_problem", lambda: vllm)
        monkeypatch.setattr(platform, "native_bf16", lambda: bf16)

    return configure


TREE = {
    "llm": {"backend": "auto", "dtype": "auto", "vllm_scoring": "auto"},
    "judge": {"llm": {"backend": "openai", "dtype": "auto"}},
    "rewriting": {"llm": {}},
    "seed_model": {"training": {"precision": "auto"}},
    "m1": {"training": {"precision": "fp32"}},
}


def test_without_vllm_or_native_bf16_auto_means_transformers_in_float32(machine):
    machine(vllm="the vllm module is not installed", bf16=False)
    assert machine_decisions(TREE) == {
        "llm.backend": "transformers",
        "llm.vllm_scoring": "transformers",
        "llm.dtype": "float32",
        "seed_model.training.precision": "fp32",
    }  # a served judge's dtype is the server's; explicit values stay


def test_where_vllm_starts_and_bf16_is_native_auto_means_vllm_in_bf16(machine):
    machine(vllm=None, bf16=True)
    assert machine_decisions(TREE) == {
        "llm.backend": "vllm",
        "llm.vllm_scoring": "transformers",  # no CUDA device here
        "llm.dtype": "bfloat16",
        "seed_model.training.precision": "bf16_mixed",
    }


DEVICES = {
    "llm": {"tensor_parallel_size": 1},
    "generation": {"engine": "auto", "ray": {"num_actors": "auto"}},
    "seed_model": {"training": {"launcher": "auto", "nproc_per_node": "auto"}},
    "m1": {"training": {"launcher": "accelerate", "nproc_per_node": "auto"}},
}


@pytest.mark.parametrize(
    ("gpus", "engine", "actors", "launcher", "processes"),
    [(0, "local", 1, "in_process", 1), (1, "local", 1, "in_process", 1), (8, "ray", 8, "torchrun", 8)],
)
def test_auto_device_counts_use_every_visible_gpu(gpus, engine, actors, launcher, processes):
    decided = machine_decisions(DEVICES, gpus)
    assert (decided["generation.engine"], decided["generation.ray.num_actors"]) == (engine, actors)
    assert (decided["seed_model.training.launcher"], decided["seed_model.training.nproc_per_node"]) == (
        launcher,
        processes,
    )
    assert decided["m1.training.nproc_per_node"] == processes and "m1.training.launcher" not in decided


def test_tensor_parallel_engines_share_the_gpus():
    tree = {**DEVICES, "llm": {"tensor_parallel_size": 2}}
    assert machine_decisions(tree, 8)["generation.ray.num_actors"] == 4


@pytest.mark.parametrize("env", ["nothumpback_m1", "nothumpback_m1_rw_f_8b"])
def test_the_seed_environments_generate_and_train_on_every_gpu_of_an_8_gpu_node(env):
    from humpback.llm.platform import plain_parameters
    from humpback.params import PARAMETER_BLOCKS
    from tests.conftest import params

    tree = {name: plain_parameters(params(name, env=env)) for name in PARAMETER_BLOCKS}
    decided = machine_decisions(tree, 8)
    engine = decided.get("generation.engine", tree["generation"]["engine"])
    assert engine == "ray" and decided["generation.ray.num_actors"] == 8
    assert tree["generation"]["ray"]["gpus_per_actor"] == 1
    for role in ("backward_model", "seed_model", "m1"):
        assert decided[f"{role}.training.nproc_per_node"] == 8
        assert decided.get(f"{role}.training.launcher", tree[role]["training"]["launcher"]) != "in_process"


def test_a_node_called_outside_a_run_names_an_undecided_setting(tiny_model_dir):
    from humpback.params import UndecidedSettingError
    from humpback.pipelines.training.launch import launcher_command
    from tests.conftest import params

    with pytest.raises(UndecidedSettingError, match="training.nproc_per_node is auto"):
        launcher_command(params("seed_model.training", launcher="torchrun", nproc_per_node="auto"), tiny_model_dir)


def test_the_run_records_what_auto_decided_before_its_first_node(kedro_project, machine):
    machine(vllm=None, bf16=False)
    overrides = {"llm": {"backend": "auto", "dtype": "auto"}, "seed_model": {"training": {"precision": "auto"}}}
    run(kedro_project, "iteration1", runtime_params=overrides, node_names=["export_iteration1_parameters"])
    recorded = json.loads((kedro_project / "data/09_export/iteration1_parameters.json").read_text())["parameters"]
    assert (recorded["llm"]["backend"], recorded["llm"]["dtype"]) == ("vllm", "float32")
    assert recorded["seed_model"]["training"]["precision"] == "fp32"


def test_a_vllm_backend_that_cannot_start_stops_the_run_before_any_node(kedro_project, machine):
    machine(vllm="vLLM's CPU kernels did not load", bf16=False)
    with pytest.raises(BackendUnavailableError, match="llm.backend is vllm, but vLLM's CPU kernels did not load"):
        run(kedro_project, "ingestion", runtime_params={"llm": {"backend": "vllm"}})
    assert not (kedro_project / "data/03_primary").exists()


def test_a_probe_that_fails_says_why_in_one_line(monkeypatch):
    monkeypatch.setattr(platform, "_VLLM_PROBE", "raise SystemExit('no kernels for this processor')")
    platform.vllm_problem.cache_clear()
    try:
        if importlib.util.find_spec("vllm") is None:
            pytest.skip("the vllm module is not installed")
        assert platform.vllm_problem() == "no kernels for this processor"
    finally:
        platform.vllm_problem.cache_clear()


@pytest.mark.vllm
def test_vllm_starts_on_this_machine():
    """Where the vllm module is installed on x86-64 Linux, the probe finds it can start: its AVX2
    kernels serve a machine without AVX-512 (the conftest turns a vLLM skip into a failure there)."""
    assert platform.vllm_problem() is None


#: a node's work as a run does it: the stop hook installed, a vLLM engine built inside the runner's
#: context manager, then the run is stopped by SIGTERM from outside while the engine is up
STOPPED_RUN = textwrap.dedent(
    """
    import os, sys, time
    from humpback.hooks import StopHooks
    from humpback.llm import LazyLanguageModel
    from tests.conftest import params
    StopHooks().before_pipeline_run()
    config = params("llm", backend="vllm", enforce_eager=True, max_model_len=512)
    with LazyLanguageModel(config, sys.argv[1]) as lazy:
        lazy.get()
        print("engine up", flush=True)
        time.sleep(600)
    """
)


def _running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _descendants(pid: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return [int(c) for c in children] + [g for c in children for g in _descendants(int(c))]


@pytest.mark.vllm
@pytest.mark.slow
def test_a_stopped_run_leaves_no_vllm_process_behind(tiny_model_dir):
    process = subprocess.Popen(
        [sys.executable, "-c", STOPPED_RUN, str(tiny_model_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=os.getcwd(),
    )
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("engine up"):
            break
    engine = _descendants(process.pid)
    assert engine, "".join(lines[-30:])  # vLLM's engine core (and its worker) run beside the node
    process.send_signal(signal.SIGTERM)
    try:
        process.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        process.kill()  # the run ignored SIGTERM: the test fails below, its processes are ended here
        process.communicate()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_running(pid) for pid in engine):
        time.sleep(0.5)
    left = [pid for pid in engine if _running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert process.returncode == 128 + signal.SIGTERM and not left
