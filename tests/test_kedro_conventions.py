"""Kedro conventions a user relies on: `kedro viz` can order the layers of every pipeline, and no
command prints a dataset-name warning."""

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from kedro.framework.project import pipelines
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project
from kedro_viz.services.layers import sort_layers

from tests.conftest import make_project

ENVIRONMENTS = ["test", "offline", "nothumpback_m1", "nothumpback_m1_rw_f_8b", "paper"]
#: the method's steps, in the order a user reads iteration 1 in kedro viz
ITERATION1_STEPS = ["raw", "ingestion", "backward_model", "seed_model", "augmentation", "iteration1", "m1", "exports"]


def kedro(project: Path, *arguments: str, env: str = "test") -> subprocess.CompletedProcess:
    environment = {**os.environ, "KEDRO_ENV": env, "KEDRO_DISABLE_TELEMETRY": "true", "COLUMNS": "200"}
    kedro_cli = Path(sys.executable).parent / "kedro"
    return subprocess.run(
        [str(kedro_cli), *arguments], cwd=project, env=environment, capture_output=True, text=True, timeout=300
    )


def layer_order(pipeline, layer_of) -> list[str]:
    """kedro-viz's own ordering of the layers in ``pipeline`` ([] when they form a cycle)."""
    nodes, children = {}, {}
    for node in pipeline.nodes:
        nodes[node.name], children[node.name] = SimpleNamespace(layer=None), set()
        for name in node.inputs:
            nodes.setdefault(name, SimpleNamespace(layer=layer_of(name)))
            children.setdefault(name, set()).add(node.name)
        for name in node.outputs:
            nodes.setdefault(name, SimpleNamespace(layer=layer_of(name)))
            children.setdefault(name, set())
            children[node.name].add(name)
    return sort_layers(nodes, children)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_pipeline_has_an_order_of_layers(kedro_project, env):
    bootstrap_project(kedro_project)
    with KedroSession.create(project_path=kedro_project, env=env) as session:
        catalog = session.load_context().catalog

    def layer_of(name: str) -> str | None:
        if name.startswith("params:") or name == "parameters" or name not in catalog:
            return None
        metadata = getattr(catalog.get(name), "metadata", None) or {}
        return (metadata.get("kedro-viz") or {}).get("layer")

    unordered = [name for name, pipeline in pipelines.items() if name != "plan" and not layer_order(pipeline, layer_of)]
    assert unordered == []
    order = layer_order(pipelines["__default__"], layer_of)
    assert [layer for layer in order if layer in ITERATION1_STEPS] == ITERATION1_STEPS


@pytest.mark.slow
def test_viz_build_shows_the_layers_and_no_command_warns_about_dataset_names(tmp_path, shared_data):
    project = make_project(tmp_path, shared_data)
    for arguments in (("registry", "list"), ("viz", "build")):
        result = kedro(project, *arguments)
        assert result.returncode == 0, result.stderr[-2000:]
        assert "dataset names contain" not in result.stdout + result.stderr
    main = json.loads((project / "build/api/main").read_text())
    assert set(ITERATION1_STEPS) <= set(main["layers"])
    assert all(node.get("layer") for node in main["nodes"] if node["type"] == "data" and node["name"] != "parameters")


def test_iteration1_runs_the_methods_steps_and_evaluation_trains_curations_random_control():
    """M1 on as many random pairs answers evaluation's question (did curation beat chance?): it trains
    where it is compared, and the default run is the method's steps 1-8."""
    from humpback.pipeline_registry import register_pipelines

    registered = register_pipelines()
    assert "m1.model" in registered["iteration1"].all_outputs()
    assert not {name for name in registered["iteration1"].all_outputs() if name.startswith("m1_random")}
    assert {"m1_random.model", "evaluation.m1_random.summary"} <= registered["evaluation"].all_outputs()


def test_controls_read_the_selection_part_and_evaluation_the_report_part():
    """What chooses a run's settings (the curator's, the backward model's and the judge's controls)
    reads the selection part; what reports a model's figures reads the report part; every held-out
    prompt is read only where no figure comes from it (training's decontamination)."""
    from humpback.pipeline_registry import register_pipelines

    readers: dict[str, set[str]] = {}
    for pipeline in register_pipelines().values():
        for node in pipeline.nodes:
            for name in node.inputs:
                readers.setdefault(name, set()).add(node.name.rsplit(".", 1)[-1])
    selection = readers["selection.heldout_pairs"] | readers["selection.ranked_pairs"]
    report = readers["report.heldout_pairs"] | readers["report.ranked_pairs"]
    assert {"curator_controls", "base_rater_controls", "backward_model_instruction_nll", "judge_controls"} <= selection
    assert {"m1_generate_responses", "m0_score_preferences", "m1_random_score_references"} <= report
    # the style detector leaves the evaluation's trees out of its fit, and checks its opener on them
    assert all(
        ("score_references" in n) or ("preferences" in n) or ("responses" in n) for n in report - {"fit_style_detector"}
    )
    assert not selection & report
    measures = ("controls", "score_", "responses", "instruction_nll", "judge")
    assert not [n for n in readers["heldout_pairs"] | readers["ranked_pairs"] if any(m in n for m in measures)]
