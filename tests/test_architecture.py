"""Rules of the code base that a reader relies on: stages are independent, and every model stage
goes through the one runner."""

import ast
from pathlib import Path

import pytest

PIPELINES = Path(__file__).resolve().parents[1] / "src" / "humpback" / "pipelines"
STAGES = sorted(p.name for p in PIPELINES.iterdir() if p.is_dir() and not p.name.startswith("_"))
#: the execution layer: only humpback.runner uses it
EXECUTION = {"humpback.execution", "humpback.shards"}
DIRECT_MODEL_USE = {"map_with_model", "build_llm", "LazyLanguageModel", "run_sharded"}


def imports(stage: str) -> list[tuple[str, set[str], Path]]:
    found = []
    for path in (PIPELINES / stage).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.append((node.module, {alias.name for alias in node.names}, path))
            elif isinstance(node, ast.Import):
                found.extend((alias.name, set(), path) for alias in node.names)
    return found


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage(stage):
    others = [
        f"{path.name}: {module}"
        for module, _, path in imports(stage)
        if module.startswith("humpback.pipelines.") and module.split(".")[2] != stage
    ]
    assert not others, f"{stage} imports other stages (compose them in pipeline_registry.py instead): {others}"


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_uses_models_only_through_the_runner(stage):
    direct = [
        f"{path.name}: {module} {sorted(names)}"
        for module, names, path in imports(stage)
        if module in EXECUTION or names & DIRECT_MODEL_USE
    ]
    assert not direct, f"{stage} calls the execution layer directly (describe a ModelTask instead): {direct}"
