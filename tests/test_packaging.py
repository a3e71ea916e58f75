"""What an install must bring for the environments it names: checked on the packaging, not guessed."""

import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from humpback.engine.execution import ExecutionError, _connect
from tests.conftest import params

PROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())


def requirement(extra: str, name: str) -> Requirement:
    found = [Requirement(r) for r in PROJECT["project"]["optional-dependencies"][extra]]
    return next(r for r in found if r.name == name)


def test_the_gpu_extra_admits_no_vllm_without_logprob_token_ids():
    """Rating and judging by option probabilities need SamplingParams.logprob_token_ids (vLLM 0.32)."""
    allowed = requirement("gpu", "vllm").specifier
    assert not allowed.contains(Version("0.31.9")) and allowed.contains(Version("0.32.0"))


def test_the_served_backend_needs_no_extra():
    assert any(Requirement(r).name == "httpx" for r in PROJECT["project"]["dependencies"])


@pytest.mark.parametrize("env", ["paper", "nothumpback_m1_rw_f_8b", "nothumpback_m1"])
def test_environments_on_ray_name_the_gpu_install_and_use_every_gpu(env):
    """Their header's install command is the README's, the GPU set it installs holds Ray, and on an
    8-GPU node their engines hold the 8 GPUs (``auto`` counts decided as a run decides them)."""
    from humpback.llm.platform import machine_decisions, plain_parameters

    root = Path(__file__).resolve().parents[1]
    header = (root / "conf" / env / "parameters.yml").read_text()
    assert "scripts/dev.sh install gpu" in header and "scripts/dev.sh install gpu" in (root / "README.md").read_text()
    assert any(line.startswith("ray==") for line in (root / "requirements" / "gpu.txt").read_text().splitlines())
    generation = plain_parameters(params("generation", env=env))
    decided = machine_decisions({"generation": generation}, 8)
    engine = decided.get("generation.engine", generation["engine"])
    actors = decided.get("generation.ray.num_actors", generation["ray"]["num_actors"])
    assert engine == "ray" and actors * generation["ray"]["gpus_per_actor"] == 8


def test_ray_engine_without_ray_says_which_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ExecutionError, match=r"\.\[ray\]"):
        _connect(params("generation", engine="ray").ray)


def test_every_package_the_source_imports_is_declared():
    """A module imported anywhere in src/ comes from a declared requirement (or an extra), not from
    whatever another package happened to pull in."""
    import ast
    import importlib.metadata
    import sys as system

    source = Path(__file__).resolve().parents[1] / "src" / "humpback"
    imported = set()
    for path in source.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(system.stdlib_module_names) - {"humpback", "__future__"}
    declared = {Requirement(r).name.lower() for r in PROJECT["project"]["dependencies"]}
    declared |= {
        Requirement(r).name.lower() for group in PROJECT["project"]["optional-dependencies"].values() for r in group
    }
    distributions = importlib.metadata.packages_distributions()
    undeclared = {
        module: distributions.get(module)
        for module in third_party
        if not {name.lower() for name in distributions.get(module, [module])} & declared
    }
    assert not undeclared, undeclared
