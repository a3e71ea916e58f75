"""The model-task runner: cache keys from what the model sees, input checks, status contract."""

import pandas as pd
import pytest

from humpback import prompts
from humpback.datasets import CheckpointHandle
from humpback.engine.runner import ModelTask, TaskInputError, run_model_task
from humpback.pipelines.augmentation.nodes import generate_instructions, instruction_task
from tests.conftest import params
from tests.scripts import Counting, scripted


@pytest.fixture
def documents(web_sample) -> pd.DataFrame:
    return web_sample.head(6).reset_index(drop=True)


@pytest.fixture
def counting():
    Counting.prompts = []
    return Counting


def run(documents, model_dir, shard_dir, **llm_changes):
    generation = params("generation", shard_dir=str(shard_dir), shard_size=2)
    return generate_instructions(
        documents,
        CheckpointHandle(str(model_dir)),
        scripted("Counting", **llm_changes),
        params("augmentation"),
        generation,
    )


def test_a_finished_run_is_reused_and_cosmetic_settings_do_not_matter(documents, tiny_model_dir, tmp_path, counting):
    first = run(documents, tiny_model_dir, tmp_path)
    assert len(counting.prompts) == 6 and len(list((tmp_path / "augmentation").glob("*.parquet"))) == 3
    counting.prompts.clear()
    # the progress bar, batch sizes and threads change how fast, never what the model answers
    again = run(
        documents, tiny_model_dir, tmp_path, show_progress=True, batch_token_budget=128, max_batch_size=2, num_threads=1
    )
    assert counting.prompts == []
    pd.testing.assert_frame_equal(again, first)


def test_an_edited_template_recomputes_every_shard(documents, tiny_model_dir, tmp_path, counting, monkeypatch):
    run(documents, tiny_model_dir, tmp_path)
    counting.prompts.clear()
    monkeypatch.setattr(prompts, "BACKWARD_SYSTEM", prompts.BACKWARD_SYSTEM + " Be brief.")
    run(documents, tiny_model_dir, tmp_path)
    assert len(counting.prompts) == 6 and all("Be brief." in prompt for prompt in counting.prompts)


def test_an_edited_row_recomputes_its_shard_only(documents, tiny_model_dir, tmp_path, counting):
    run(documents, tiny_model_dir, tmp_path)
    counting.prompts.clear()
    edited = documents.copy()
    edited.loc[5, "text"] = edited.loc[5, "text"] + " One more sentence."
    run(edited, tiny_model_dir, tmp_path)
    assert len(counting.prompts) == 2  # the last shard of two rows


def test_output_settings_and_weights_are_part_of_the_key(documents, tiny_model_dir, tmp_path, counting):
    run(documents, tiny_model_dir, tmp_path)
    counting.prompts.clear()
    run(documents, tiny_model_dir, tmp_path, seed=1)
    assert len(counting.prompts) == 6
    counting.prompts.clear()
    other_weights = CheckpointHandle(str(tiny_model_dir), {"weights_sha256": "another checkpoint"})
    generation = params("generation", shard_dir=str(tmp_path), shard_size=2)
    generate_instructions(documents, other_weights, scripted("Counting"), params("augmentation"), generation)
    assert len(counting.prompts) == 6


def test_a_parser_fix_needs_no_model_call(documents, tiny_model_dir, tmp_path, counting):
    """Raw outputs are cached, parsed ones are not: stricter cleaning reads the same shards."""
    loose = run(documents, tiny_model_dir, tmp_path)
    counting.prompts.clear()
    strict = generate_instructions(
        documents,
        CheckpointHandle(str(tiny_model_dir)),
        scripted("Counting"),
        params("augmentation", min_instruction_chars=400),
        params("generation", shard_dir=str(tmp_path), shard_size=2),
    )
    assert counting.prompts == []
    assert (loose["status"] == "ok").all() and (strict["status"] == "too_short").all()


def test_missing_columns_and_empty_prompts_are_named(documents, tiny_model_dir):
    task = instruction_task(params("augmentation"))
    model = CheckpointHandle(str(tiny_model_dir))
    with pytest.raises(TaskInputError, match=r"augmentation: the input rows lack column\(s\) \['text'\]"):
        run_model_task(
            task, documents.rename(columns={"text": "body"}), model, scripted("Counting"), params("generation")
        )
    blank = documents.assign(text=["A document."] * 5 + ["   "])
    with pytest.raises(TaskInputError, match="augmentation: row 5: prompt 5 is empty"):
        run_model_task(task, blank, model, scripted("Counting"), params("generation", shard_dir=None))


def test_no_rows_load_no_model(documents):
    task = instruction_task(params("augmentation"))
    nowhere = CheckpointHandle("/nonexistent")
    result = run_model_task(task, documents.head(0), nowhere, scripted("Counting"), params("generation"))
    assert result.empty and {"raw_instruction", "status", "request_like"} <= set(result.columns)


def test_a_parser_must_give_one_status_per_row(documents, tiny_model_dir):
    broken = ModelTask(
        name="broken",
        reads=("text",),
        prompt=lambda row: row["text"],
        request=instruction_task(params("augmentation")).request,
        parse=lambda rows, raw: raw.head(1).assign(status="ok"),
        status="status",
    )
    with pytest.raises(TaskInputError, match="one row per input row"):
        run_model_task(
            broken,
            documents,
            CheckpointHandle(str(tiny_model_dir)),
            scripted("Counting"),
            params("generation", shard_dir=None),
        )


@pytest.fixture
def built_backends(monkeypatch):
    """The backend of every model the runner builds, in order."""
    from humpback.llm import factory

    built, build = [], factory.build_llm

    def recording(config, model_path):
        model = build(config, model_path)
        built.append(type(model).__name__)
        return model

    monkeypatch.setattr(factory, "build_llm", recording)
    return built


def test_under_vllm_completions_are_scored_where_vllm_scoring_says(documents, tiny_model_dir, built_backends):
    """vLLM's CPU build takes prompt log-probabilities over the whole vocabulary at every prompt token;
    with ``vllm_scoring: transformers`` the runner scores through transformers and keys the cache so."""
    from humpback.engine.answer_scoring import score_answers

    rows = pd.DataFrame({"instruction": ["Say hello.", "Name a colour."], "response": ["Hello there.", "Blue."]})
    model, generation = CheckpointHandle(str(tiny_model_dir)), params("generation", shard_dir=None)
    by_transformers = score_answers("t", rows, "response", None, model, params("llm"), generation)
    vllm = params("llm", backend="vllm", vllm_scoring="transformers")
    rerouted = score_answers("v", rows, "response", None, model, vllm, generation)
    assert built_backends == ["TransformersLanguageModel", "TransformersLanguageModel"]
    assert rerouted["response_nll"].tolist() == pytest.approx(by_transformers["response_nll"].tolist())


def test_vllm_scoring_auto_is_vllm_on_gpus_and_transformers_on_cpus(monkeypatch):
    from humpback.llm import config as llm_config

    vllm = params("llm", backend="vllm", vllm_scoring="auto")
    monkeypatch.setattr(llm_config, "auto_vllm_scoring", lambda: "transformers")
    assert vllm.for_completion_scoring().backend == "transformers"
    monkeypatch.setattr(llm_config, "auto_vllm_scoring", lambda: "vllm")
    assert vllm.for_completion_scoring() is vllm
    assert params("llm", backend="vllm", vllm_scoring="vllm").for_completion_scoring().backend == "vllm"
    served = params("llm", backend="openai", base_url="http://localhost:8000/v1", served_model="m")
    assert served.for_completion_scoring() is served  # only a vLLM engine hands scoring over


def test_checkpoints_trained_from_one_base_share_one_tokenizer(tiny_model_dir, tmp_path):
    """Every checkpoint trained from the base carries the same tokenizer files: the run keeps one
    tokenizer for all of them (Gemma's takes ~250 MB each), and a changed tokenizer file loads anew."""
    import json
    import shutil

    from humpback.engine.caches import cached_tokenizer

    trained, retemplated = tmp_path / "trained", tmp_path / "retemplated"
    for folder in (trained, retemplated):
        shutil.copytree(tiny_model_dir, folder)
        (folder / "README.md").write_text(f"model card of {folder.name}")
    config = retemplated / "tokenizer_config.json"
    config.write_text(json.dumps(json.loads(config.read_text()) | {"model_max_length": 77}))

    base = cached_tokenizer(str(tiny_model_dir), False)
    assert cached_tokenizer(str(trained), False) is base
    assert cached_tokenizer(str(retemplated), False) is not base
    assert cached_tokenizer(str(retemplated), False).model_max_length == 77


@pytest.fixture
def engines_as_scripts(monkeypatch):
    """Every model built answers by the Counting script, whatever backend its block names: the
    backends built, in order."""
    from humpback.llm import factory
    from humpback.llm.scripted import ScriptedLanguageModel

    built = []

    def build(config, model_path):
        built.append(config.backend)
        return ScriptedLanguageModel(config.model_copy(update={"backend": "scripted"}), model_path)

    monkeypatch.setattr(factory, "build_llm", build)
    return built


def test_in_a_run_a_vllm_engine_is_kept_for_the_next_stage_on_its_checkpoint_and_closed_before_any_other_node(
    documents, tiny_model_dir, tmp_path, engines_as_scripts
):
    """The curator's controls and its rating are consecutive stages on M0: one engine serves both
    (a vLLM engine takes about a minute to start on a CPU). Before any other node (a training), the
    run's hooks close it. Backends that start in seconds are closed by their stage."""
    from humpback.hooks import NodeResourceHooks

    hooks, node = NodeResourceHooks(), type("Node", (), {"name": "n"})()
    model = CheckpointHandle(str(tiny_model_dir))
    vllm = {"backend": "vllm"}
    hooks.before_pipeline_run()
    try:
        run(documents.head(3), tiny_model_dir, tmp_path, **vllm)
        hooks.before_node_run(node, {"rows": documents, "m0": model, "params:llm": {}})  # a stage on M0: kept
        run(documents.tail(3), tiny_model_dir, tmp_path, **vllm)
        assert engines_as_scripts == ["vllm"]
        run(documents.iloc[[0, 3]], tiny_model_dir, tmp_path)  # transformers-like: its own, closed
        run(documents.iloc[[1, 4]], tiny_model_dir, tmp_path)
        assert engines_as_scripts == ["vllm", "scripted", "scripted"]
        hooks.before_node_run(node, {"examples": documents.assign(path="x"), "m0": model})  # a training: closed
        run(documents.iloc[1:3], tiny_model_dir, tmp_path, **vllm)  # shards not computed yet: a model is needed
        assert engines_as_scripts == ["vllm", "scripted", "scripted", "vllm"]
    finally:
        hooks.after_pipeline_run()
    run(documents.iloc[[0, 2]], tiny_model_dir, tmp_path, **vllm)  # outside a run, each stage has its own
    run(documents.iloc[[1, 3]], tiny_model_dir, tmp_path, **vllm)
    assert engines_as_scripts == ["vllm", "scripted", "scripted", "vllm", "vllm", "vllm"]


def test_a_stage_on_a_kept_engine_renders_with_its_tokenizer_and_loads_no_copy_beside_it(
    documents, tiny_model_dir, tmp_path, engines_as_scripts, counting
):
    """The engine's client holds a tokenizer (and vLLM a pool of copies): the runner's own cached
    copy (~300 MB for Gemma) is dropped when an engine starts and not loaded again while it serves.
    The engine's tokenizer keys rows as the cached one does: finished shards are reused."""
    from humpback.engine import caches
    from humpback.hooks import NodeResourceHooks

    hooks, node = NodeResourceHooks(), type("Node", (), {"name": "n"})()
    model = CheckpointHandle(str(tiny_model_dir))
    vllm = {"backend": "vllm"}
    hooks.before_pipeline_run()
    try:
        first = run(documents.head(3), tiny_model_dir, tmp_path, **vllm)
        assert caches._tokenizer_for_files.cache_info().currsize == 0
        hooks.before_node_run(node, {"rows": documents, "m0": model, "params:llm": {}})
        asked = len(counting.prompts)
        again = run(documents.head(3), tiny_model_dir, tmp_path, **vllm)  # the engine's tokenizer, same keys
        assert len(counting.prompts) == asked
        pd.testing.assert_frame_equal(again, first)
        run(documents.tail(3), tiny_model_dir, tmp_path, **vllm)
        assert len(counting.prompts) > asked
        assert caches._tokenizer_for_files.cache_info().currsize == 0
        assert engines_as_scripts == ["vllm"]
    finally:
        hooks.after_pipeline_run()
    run(documents.iloc[[0, 2]], tiny_model_dir, tmp_path)  # no engine kept: the cached tokenizer again
    assert caches._tokenizer_for_files.cache_info().currsize == 1
