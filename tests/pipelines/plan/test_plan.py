"""The plan: shapes and parameter counts that match real models, memory that refuses what cannot fit,
the run's own parameters, and the documented sizing table as the plan prints it."""

from pathlib import Path

import pandas as pd
import pytest
from transformers import AutoConfig, AutoModelForCausalLM

from humpback.params import PARAMETER_BLOCKS
from humpback.pipelines.plan.nodes import (
    PlanError,
    check_plan,
    parameter_count,
    plan_from_parameters,
    read_model_shape,
    render_plan,
)
from tests.conftest import params
from tests.test_run import run

SIZING_DOC = Path(__file__).resolve().parents[3] / "docs/environments.md"


def plan_for(env: str, **training_changes):
    blocks = {name: params(name, env=env) for name in PARAMETER_BLOCKS}
    for model in ("backward_model", "seed_model", "m1"):
        if training_changes:
            blocks[model] = params(model, env=env, training=training_changes)
    return plan_from_parameters(blocks)


def test_parameter_counts_match_models_built_from_their_configs(tiny_model_dir):
    shape = read_model_shape(params("base_model", source="local", name_or_path=str(tiny_model_dir)), None)
    assert shape["shape_from"] == "config"
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(tiny_model_dir))
    assert parameter_count(shape)[0] == model.num_parameters()


@pytest.mark.parametrize(
    ("env", "billions"),
    [("base", 0.268), ("nothumpback_m1", 3.21), ("nothumpback_m1_rw_f_8b", 8.03)],
)
def test_the_environments_state_their_models_shapes(env, billions):
    """Gemma 3 270M, Llama-3.2-3B and Llama-3.1-8B as their model cards count them."""
    total, _ = parameter_count({**params("plan.model_shape", env=env).model_dump(), "shape_from": "parameters"})
    assert total / 1e9 == pytest.approx(billions, rel=0.01)


#: parameters of the models the GPU environments name, from their published config.json files
PUBLISHED = {
    "Llama-3.2-3B": {"layers": 28, "hidden_size": 3072, "intermediate_size": 8192, "tied_embeddings": True},
    "Llama-3.1-8B": {"layers": 32, "hidden_size": 4096, "intermediate_size": 14336, "tied_embeddings": False},
}


@pytest.mark.parametrize("env", ["nothumpback_m1", "nothumpback_m1_rw_f_8b", "paper"])
@pytest.mark.parametrize(("model", "shape"), [("base_model", "model_shape"), ("aligned_model", "aligned_model_shape")])
def test_the_plan_sizes_the_models_the_environment_names(env, model, shape):
    name = params(model, env=env).name_or_path.split("/")[-1].removesuffix("-Instruct")
    stated = params(f"plan.{shape}", env=env).model_dump()
    assert {key: stated[key] for key in PUBLISHED[name]} == PUBLISHED[name], f"{env}: {shape} is not {name}'s"


@pytest.mark.parametrize("env", ["nothumpback_m1", "nothumpback_m1_rw_f_8b", "paper"])
def test_the_gpu_environments_fit_their_devices(env):
    table = plan_for(env)
    assert table["fits"].all(), table.loc[~table["fits"], ["stage", "memory_gib", "device_gib"]]
    assert list(table["stage"])[:3] == ["backward_model training", "augmentation", "seed_model training"]
    m1 = table.set_index("stage").loc["m1 training"]
    assert m1["rows"] == 16_000 and m1["batch"] == 32 and m1["steps"] == 1200  # cap, then paper's rules
    # the held-out pairs come from the reserve after the seed cap: every one of the 3,200 seed pairs trains
    assert table.set_index("stage").loc["seed_model training", "rows"] == 3200
    assert m1["per_device_batch"] * m1["accumulation"] * m1["devices"] == m1["batch"]


@pytest.mark.parametrize("gpus", [1, 8])
def test_notHumpback_M1_uses_every_gpu_of_the_node_the_plan_describes(gpus):
    """``auto`` launcher, processes and engines: one GPU trains in process and generates with one
    engine; eight train data-parallel in eight processes and generate with eight engines."""
    blocks = {name: params(name, env="nothumpback_m1") for name in PARAMETER_BLOCKS}
    blocks["plan"] = params("plan", env="nothumpback_m1", device={"count": gpus})
    table = plan_from_parameters(blocks).set_index("stage")
    assert (table.loc[table["kind"] != "overhead", "devices"] == gpus).all(), table["devices"]
    assert table["fits"].all(), table.loc[~table["fits"], ["memory_gib", "device_gib"]]
    m1 = table.loc["m1 training"]
    assert m1["per_device_batch"] * m1["accumulation"] * gpus == m1["batch"] == 32
    one = plan_from_parameters({**blocks, "plan": params("plan", env="nothumpback_m1")}).set_index("stage")
    assert table.loc["augmentation", "hours"] == pytest.approx(one.loc["augmentation", "hours"] / gpus)


def test_the_plan_counts_what_a_gpu_run_spends_beside_the_models():
    """notHumpback-M1: ingestion of 502k documents, eight engine starts (augmentation; the base
    model's ratings of the controls; M0's controls and rating on one; four evaluated models; the
    judge), the controls' two passes, and 38
    checkpoint saves (one final per training, a resumable one every 100 steps: 5 + 5 + 12 + 12), each
    resumable one ~36 GiB (3.2 B fp32 weights and two fp32 AdamW moments)."""
    table = plan_for("nothumpback_m1").set_index("stage")
    assert table.loc["ingestion", "rows"] == 502_000
    assert (table["kind"].isin(["generate", "score"])).sum() == 6
    assert table.loc["engine starts", "rows"] == 1 + 1 + 1 + 4 + 1
    assert table.loc["curation controls", "rows"] == table.loc["curation controls, base rater", "rows"] > 0
    blocks = {name: params(name, env="nothumpback_m1") for name in PARAMETER_BLOCKS}
    blocks["curation"] = params("curation", env="nothumpback_m1", base_rater_controls=False)
    without_base = plan_from_parameters(blocks).set_index("stage")
    assert "curation controls, base rater" not in without_base.index
    assert without_base.loc["engine starts", "rows"] == 1 + 1 + 4 + 1
    writes = table.loc["checkpoint writes"]
    assert writes["rows"] == 38
    assert 34 * 35 / 3600 < writes["hours"] < 34 * 37 / 3600 + 4 * 7 / 3600  # 34 resumable saves at 1 GiB/s
    assert table["hours"].sum() > table.loc[table["kind"] != "overhead", "hours"].sum() + 0.7


def test_a_3b_model_without_activation_checkpointing_is_refused_in_one_line():
    """Batch 8 at 2,048 tokens, fp32 weights and AdamW on one 80 GB GPU: over 90 GiB, as estimated."""
    table = plan_for("nothumpback_m1", gradient_checkpointing=False)
    m1 = table.set_index("stage").loc["m1 training"]
    assert 90 < m1["memory_gib"] < 140 and not m1["fits"]
    with pytest.raises(
        PlanError, match=r"^backward_model training needs \d+\.\d GiB per device, the device has 79\.6 GiB"
    ) as error:
        check_plan(table, render_plan(table, params("plan", env="nothumpback_m1")))
    assert "\n" not in str(error.value)


def test_fsdp_shards_the_8b_states_over_its_processes():
    table = plan_for("nothumpback_m1_rw_f_8b").set_index("stage")
    m1 = table.loc["m1 training"]
    assert m1["devices"] == 8 and m1["memory_gib"] < m1["memory_gib_one_process"] / 2
    assert table.loc["augmentation", "devices"] == 8  # one vLLM engine per GPU


def test_the_documented_sizing_table_is_the_plan_of_notHumpback_m1():
    """Regenerate it with `python scripts/plan_table.py nothumpback_m1`."""
    table = plan_for("nothumpback_m1")
    assert render_plan(table, params("plan", env="nothumpback_m1")) in SIZING_DOC.read_text()


def test_plan_pipeline_loads_no_model_and_writes_its_report(kedro_project):
    run(kedro_project, "plan")
    plan = pd.read_csv(kedro_project / "data/08_reporting/plan.csv")
    assert plan["fits"].all() and (kedro_project / "data/08_reporting/plan.md").read_text().startswith("| stage |")
    assert not (kedro_project / "data/06_models").exists() or not any((kedro_project / "data/06_models").iterdir())


def test_the_plan_pipeline_decides_auto_counts_for_the_node_it_describes_not_this_machine(kedro_project):
    """`kedro run --pipeline=plan --env nothumpback_m1 --params plan.device.count=8` on a machine
    without a GPU: every model stage on 8 devices."""
    run(kedro_project, "plan", env="nothumpback_m1", runtime_params={"plan": {"device": {"count": 8}}})
    plan = pd.read_csv(kedro_project / "data/08_reporting/plan.csv")
    assert (plan.loc[plan["kind"] != "overhead", "devices"] == 8).all(), plan[["stage", "devices"]]


def test_scoring_memory_is_bound_by_the_longest_request_not_by_the_tokens_per_call():
    """vLLM computes prompt log-probabilities one request at a time (its GPU model runner's
    prompt-logprob loop): the cap on tokens per call changes how many calls, not the peak."""
    from humpback.pipelines.plan.nodes import _engine_columns

    plan = params("plan", env="nothumpback_m1")
    llm = params("llm", env="nothumpback_m1")
    generation = params("generation", env="nothumpback_m1")
    row = {"kind": "score", "stage": "curation", "parameters_b": 3.2, "vocab_size": 128256, "prefill_tokens": 1e6,
           "decode_tokens": 0, "memory_gib": 0.0}  # fmt: skip
    capped = _engine_columns(row, llm, generation, plan)
    uncapped = _engine_columns(row, llm.model_copy(update={"score_batch_tokens": None}), generation, plan)
    shorter = _engine_columns(row, llm.model_copy(update={"max_model_len": 2048}), generation, plan)
    assert capped["memory_gib"] == uncapped["memory_gib"] > shorter["memory_gib"]


def test_generation_is_charged_at_the_stated_lengths_not_the_cap():
    """Most instructions end long before max_new_tokens; the plan charges the stated mean, at most the cap."""
    table = plan_for("nothumpback_m1").set_index("stage")
    documents = table.loc["augmentation", "rows"]
    plan = params("plan", env="nothumpback_m1")
    cap = params("augmentation", env="nothumpback_m1").sampling.max_new_tokens
    assert plan.mean_tokens.instruction < cap
    per_row = table.loc["augmentation", "tokens"] / documents
    assert per_row == plan.mean_tokens.prompt_overhead + plan.mean_tokens.document + plan.mean_tokens.instruction
    assert "Stated, not measured" in render_plan(plan_for("nothumpback_m1"), plan)
