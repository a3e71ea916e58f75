"""The layering a reader relies on, checked on the import graph of ``src/humpback``.

From the top: the Kedro frame → stages (``pipelines/*``) → the engine → data rules and reports →
the language-model interface and the checkpoint dataset. ``params`` (the typed parameter blocks) and
``prompts`` (prompts as data) are definitions every layer may read. An import never runs up, stages
never import each other, and there are no circles.
"""

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SOURCE / "humpback"
STAGES = sorted(p.name for p in (PACKAGE / "pipelines").iterdir() if p.is_dir() and not p.name.startswith("_"))
#: the top level of the package holds the frame, the definitions and the layer packages, nothing else
TOP_LEVEL = {
    "__init__.py",
    "__main__.py",
    "settings.py",
    "hooks.py",
    "params.py",
    "pipeline_registry.py",
    "prompts.py",
    "engine",
    "data",
    "reports",
    "llm",
    "datasets",
    "pipelines",
}
#: a layer may import its own and lower ranks only
RANKS = {"frame": 5, "stage": 4, "engine": 3, "data": 2, "reports": 2, "definitions": 1, "llm": 0, "datasets": 0}
#: only the runner calls the execution layer and builds models; stages describe ModelTasks
DIRECT_MODEL_USE = {"map_with_model", "build_llm", "LazyLanguageModel", "run_sharded"}


def module_name(path: Path) -> str:
    return ".".join(path.with_suffix("").relative_to(SOURCE).parts).removesuffix(".__init__")


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in {"settings", "hooks", "pipeline_registry", "__main__"}:
        return "frame"
    if parts[1] in {"params", "prompts"}:
        return "definitions"
    return "stage" if parts[1] == "pipelines" else parts[1]


def imports_of(module: str) -> list[tuple[str, set[str]]]:
    """(imported humpback module, names) for every import in the module, deferred ones included."""
    found = []
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("humpback"):
            names = {alias.name for alias in node.names}
            submodules = {f"{node.module}.{name}" for name in names if f"{node.module}.{name}" in MODULES}
            found.extend((sub, set()) for sub in submodules)
            if names - {sub.rsplit(".", 1)[1] for sub in submodules}:
                found.append((node.module, names))
        elif isinstance(node, ast.Import):
            found.extend((alias.name, set()) for alias in node.names if alias.name.startswith("humpback"))
    return found


def graph() -> dict[str, set[str]]:
    """Module → the humpback modules it imports."""
    edges: dict[str, set[str]] = {module: set() for module in MODULES}
    for module in MODULES:
        for target, _ in imports_of(module):
            edges[module].add(target)
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle of the graph (depth-first search), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(edges.get(node, ())):
            if target == node:
                continue
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (cycle := visit(target)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_top_level_holds_the_frame_definitions_and_layer_packages_only():
    present = {p.name for p in PACKAGE.iterdir() if p.name != "__pycache__"}
    assert present <= TOP_LEVEL, f"put these in a layer package: {sorted(present - TOP_LEVEL)}"


def test_no_import_circles():
    assert find_cycle(graph()) is None, f"import circle: {' → '.join(find_cycle(graph()))}"


def test_the_circle_check_can_fail():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_no_import_runs_up_a_layer():
    upward = [
        f"{module} ({layer(module)}) imports {target} ({layer(target)})"
        for module in MODULES
        for target, _ in imports_of(module)
        if target in MODULES and layer(target) != layer(module) and RANKS[layer(target)] > RANKS[layer(module)]
    ]
    assert not upward, "imports that run up a layer:\n" + "\n".join(upward)


def test_the_layer_check_can_fail():
    assert RANKS[layer("humpback.pipelines.curation.nodes")] > RANKS[layer("humpback.engine.runner")]
    assert RANKS[layer("humpback.engine.runner")] > RANKS[layer("humpback.reports.health")]
    assert RANKS[layer("humpback.data.dedup")] > RANKS[layer("humpback.llm.base")]
    assert layer("humpback.settings") == "frame" and layer("humpback.params") == "definitions"


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_imports_no_other_stage(stage):
    others = [
        f"{module} imports {target}"
        for module in MODULES
        if module.startswith(f"humpback.pipelines.{stage}")
        for target, _ in imports_of(module)
        if target.startswith("humpback.pipelines.") and target.split(".")[2] != stage
    ]
    assert not others, f"{stage} imports other stages (compose them in pipeline_registry.py instead): {others}"


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_uses_models_only_through_the_runner(stage):
    direct = [
        f"{module}: {target} {sorted(names)}"
        for module in MODULES
        if module.startswith(f"humpback.pipelines.{stage}")
        for target, names in imports_of(module)
        if target == "humpback.engine.execution" or names & DIRECT_MODEL_USE
    ]
    assert not direct, f"{stage} calls the execution layer directly (describe a ModelTask instead): {direct}"
