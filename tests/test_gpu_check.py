"""scripts/gpu_check.py's CPU-runnable parts, run as the GPU machine would run them: in a fresh
virtual environment holding the machine's own packages (torch, transformers, accelerate, peft, their
dependencies: not Kedro, vLLM, TRL or datasets) and only what scripts/gpu_check.sh carries there, at
the GPU set's versions. Every check runs on small shapes and writes its JSON."""

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.environments import run, torch_cpu_sources, uv
from tests.test_dependencies import SETS, pins

ROOT = Path(__file__).resolve().parents[1]
#: what the GPU machine's image holds that the check's packages need (its versions, not ours)
MACHINE_PACKAGES = [
    "torch==2.13.0+cpu",  # stands in for the machine's CUDA build
    "transformers<5.18",  # the machine's is older than the GPU set's: the carried wheel replaces it
    "accelerate",
    "peft",
    "numpy",
    "pandas",
    "pyarrow",
    "pyyaml",
    "jinja2",
    "psutil",
    "tqdm",
]
#: packages the GPU machine does not have: importing one in the check must fail there, so it fails here
ABSENT = ("kedro", "kedro_datasets", "vllm", "ray", "datasketch", "py3langid")


def carried() -> list[str]:
    lines = (ROOT / "scripts" / "gpu_check_carry.txt").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_what_the_check_carries_is_pinned_by_the_gpu_set():
    versions = pins(SETS["gpu"])
    assert {"transformers", "trl", "datasets", "pydantic", "xxhash"} <= set(carried())
    assert all(canonicalize_name(name) in versions for name in carried())


@pytest.fixture(scope="module")
def gpu_machine_python(tmp_path_factory) -> Path:
    """A fresh environment shaped like the GPU machine, with the carried wheels installed over it."""
    folder = tmp_path_factory.mktemp("gpu-machine")
    venv = folder / "venv"
    run([uv(), "venv", "--quiet", "--python", sys.executable, str(venv)])
    python = venv / "bin" / "python"
    run([uv(), "pip", "install", "--quiet", "--python", str(python), *torch_cpu_sources(), *MACHINE_PACKAGES])
    version = sysconfig.get_python_version()
    run(["bash", str(ROOT / "scripts" / "gpu_check_wheels.sh"), version, str(folder / "whl")])
    wheels = sorted(str(path) for path in (folder / "whl").glob("*.whl"))
    assert len(wheels) == len(carried())
    run([uv(), "pip", "install", "--quiet", "--python", str(python), "--no-deps", "--reinstall", *wheels])
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    (Path(site) / "sitecustomize.py").write_text(
        f"import sys\nfor name in {ABSENT!r}:\n    sys.modules[name] = None  # import fails, as on the GPU machine\n"
    )
    return python


def test_the_gpu_machines_environment_has_the_sets_versions_and_no_kedro(gpu_machine_python):
    versions = pins(SETS["gpu"])
    script = (
        "import importlib, importlib.metadata as m, json\n"
        f"names = {carried()!r}\n"
        "blocked = []\n"
        f"for name in {ABSENT!r}:\n"
        "    try: importlib.import_module(name)\n"
        "    except ImportError: blocked.append(name)\n"
        "print(json.dumps({'versions': {n: m.version(n) for n in names}, 'blocked': blocked}))\n"
    )
    seen = json.loads(run([str(gpu_machine_python), "-c", script]).stdout)
    assert seen["blocked"] == list(ABSENT)
    assert {name: str(versions[canonicalize_name(name)]) for name in carried()} == seen["versions"]


@pytest.mark.slow
def test_every_gpu_check_runs_on_cpu_and_reports(gpu_machine_python, tmp_path):
    out = tmp_path / "gpu_check.json"
    environment = {
        "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}",
        "HF_HUB_OFFLINE": "1",
        "PATH": str(gpu_machine_python.parent),
    }
    finished = subprocess.run(
        [
            str(gpu_machine_python),
            str(ROOT / "scripts" / "gpu_check.py"),
            "--device",
            "cpu",
            "--quick",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        env=environment,
    )
    assert out.is_file(), finished.stdout[-3000:] + finished.stderr[-3000:]
    results = json.loads(out.read_text())
    failed = {name: value for name, value in results.items() if isinstance(value, dict) and "error" in value}
    assert finished.returncode == 0 and not failed, failed or finished.stdout[-3000:]
    assert results["backend_parity"]["same_greedy_texts"] == 3  # the CPU against itself: identical
    assert results["training"]["heldout_loss_after"] < results["training"]["heldout_loss_before"]
    step = results["optimizer_step"]
    assert step["checkpointing"]["tokens_per_s"] > 0 and step["no_checkpointing"]["plan_estimate_gib"] > 0
    assert results["fsdp2_launch"]["processes"] == 1 and results["fsdp2_launch"]["steps"] == 2
    sampling = results["seeded_sampling"]
    assert sampling["native_seeded_ms"] > 0 and sampling["native_unseeded_ms"] > 0
    assert "gpu check: 6 passed, 0 failed" in finished.stdout
