"""The generation stages on Ray Data, for real, on a local 2-CPU cluster with a tiny model."""

import dataclasses
import time
from pathlib import Path

import pandas as pd
import pytest

from humpback.datasets import CheckpointHandle
from humpback.engine.execution import ExecutionError
from humpback.engine.runner import Generate, run_model_task
from humpback.pipelines.augmentation.nodes import generate_instructions, instruction_task
from humpback.pipelines.curation.nodes import score_candidates
from tests.conftest import TEST_LLM, clean_documents, params

ray = pytest.importorskip("ray")

AUGMENTATION = params("augmentation", sampling={"max_new_tokens": 16, "seed": 5})
RAY_SETTINGS = {"num_actors": 2, "cpus_per_actor": 0.5, "threads_per_actor": 1, "timeout_s": 300}
RAY = params("generation", engine="ray", shard_size=4, shard_dir=None, ray=RAY_SETTINGS)
LOCAL = params("generation", shard_size=4, shard_dir=None)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def documents(c4_documents):
    return clean_documents(c4_documents.head(60))[0].head(12).reset_index(drop=True)


def test_ray_gives_the_same_rows_as_local(cluster, documents, tiny_model_dir):
    model = CheckpointHandle(str(tiny_model_dir))
    on_ray = generate_instructions(documents, model, TEST_LLM, AUGMENTATION, RAY)
    local = generate_instructions(documents, model, TEST_LLM, AUGMENTATION, LOCAL)
    pd.testing.assert_frame_equal(on_ray, local)
    assert on_ray["doc_id"].tolist() == documents["doc_id"].tolist()


def test_empty_input_on_ray_gives_the_local_empty_result(cluster, documents, tiny_model_dir):
    """Nothing left to rate or rewrite (e.g. curation kept nothing) must not fail the Ray run."""
    model = CheckpointHandle(str(tiny_model_dir))
    on_ray = generate_instructions(documents.head(0), model, TEST_LLM, AUGMENTATION, RAY)
    local = generate_instructions(documents.head(0), model, TEST_LLM, AUGMENTATION, LOCAL)
    pd.testing.assert_frame_equal(on_ray, local)
    assert on_ray.empty


def test_ray_ratings_equal_local_ones_with_unrated_rows(cluster, documents, tiny_model_dir):
    """Numbers and missing values come back from Ray as they are made locally (NumPy dtypes, NaN)."""
    pairs = documents.rename(columns={"text": "response"}).assign(instruction="Summarise this.")
    pairs.loc[3, "instruction"] = "Summarise this. " * 300  # longer than the context: not rated
    rater = CheckpointHandle(str(tiny_model_dir), {"role": "seed"})
    llm = params("llm", max_model_len=1024)
    curation = params("curation", scorer="option_probabilities", few_shot=0)
    training = params("m1.training")  # answers are rated as its training cuts them
    on_ray = score_candidates(pairs, rater, rater, llm, curation, RAY, training)  # base: read by likelihood scorers
    local = score_candidates(pairs, rater, rater, llm, curation, LOCAL, training)
    pd.testing.assert_frame_equal(on_ray, local)
    assert (
        on_ray["score_status"].tolist().count("prompt_too_long") == 1
        and on_ray["score"].notna().sum() == len(pairs) - 1
    )


@dataclasses.dataclass(frozen=True)
class FailingGenerate(Generate):
    """Generation, except that it fails on the shard holding ``marker`` while ``flag`` exists, once
    another shard is on disk: a failure late in a run (a fixed pause is not enough, Ray may drop
    results it holds but has not handed over when the run fails)."""

    marker: str = ""
    flag: str = ""
    shard_dir: str = ""

    def answer(self, model, requests):
        texts = [model.tokenizer.decode([int(t) for t in ids]) for ids in requests["prompt_ids"]]
        if any(self.marker in text for text in texts) and Path(self.flag).exists():
            deadline = time.monotonic() + 120
            while not list(Path(self.shard_dir).glob("*/*.parquet")) and time.monotonic() < deadline:
                time.sleep(0.1)
            raise RuntimeError("forced failure")
        return super().answer(model, requests)


def test_ray_run_resumes_after_a_failure_without_redoing_shards(cluster, documents, tiny_model_dir, tmp_path):
    flag = tmp_path / "fail"
    flag.touch()
    shard_dir = tmp_path / "shards"
    generation = params("generation", engine="ray", shard_size=4, shard_dir=str(shard_dir), ray=RAY_SETTINGS)
    failing = FailingGenerate(
        AUGMENTATION.sampling, marker=documents["text"].iloc[-1][:60], flag=str(flag), shard_dir=str(shard_dir)
    )
    task = dataclasses.replace(instruction_task(AUGMENTATION), request=failing)
    model = CheckpointHandle(str(tiny_model_dir))
    with pytest.raises(Exception, match="forced failure"):
        run_model_task(task, documents, model, TEST_LLM, generation)
    finished = {p: p.stat().st_mtime_ns for p in shard_dir.glob("augmentation/*.parquet")}
    assert 0 < len(finished) < 3, "the failure must leave some shards done and some not"

    flag.unlink()
    resumed = run_model_task(task, documents, model, TEST_LLM, generation)
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items()), "a finished shard was computed again"
    expected = generate_instructions(documents, model, TEST_LLM, AUGMENTATION, LOCAL)
    assert resumed["raw_instruction"].tolist() == expected["raw_instruction"].tolist()  # nothing lost or doubled


@pytest.mark.parametrize(
    ("ray_params", "message"),
    [
        ({"gpus_per_actor": 1}, "cluster has 0 GPUs"),
        ({"cpus_per_actor": 1}, "would hang"),
        ({"timeout_s": 0.001}, "exceeded generation.ray.timeout_s"),  # checked as the first shard comes back
    ],
)
def test_impossible_requests_fail_clearly(cluster, documents, tiny_model_dir, ray_params, message):
    generation = params("generation", engine="ray", shard_size=4, shard_dir=None, ray=RAY_SETTINGS | ray_params)
    with pytest.raises(ExecutionError, match=message):
        generate_instructions(documents, CheckpointHandle(str(tiny_model_dir)), TEST_LLM, AUGMENTATION, generation)


def test_actors_in_another_working_directory_find_the_model(tiny_model_dir, tmp_path, monkeypatch):
    """Ray starts actors in working directories of its own (and on other machines): a model folder
    named relative to the run's directory must reach them as a path that still resolves."""
    from humpback.engine.execution import _ShardWorker, actor_arguments

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "data" / "model").symlink_to(tiny_model_dir)
    monkeypatch.chdir(project)
    task = Generate(AUGMENTATION.sampling).answer
    arguments = actor_arguments(task, TEST_LLM, "data/model", RAY.ray)
    monkeypatch.chdir(tmp_path)  # the actor's own directory
    worker = _ShardWorker(**arguments)
    assert worker.model.context_length > 0

    missing = actor_arguments(task, TEST_LLM, str(tmp_path / "only-on-the-driver"), RAY.ray)
    with pytest.raises(ExecutionError, match="storage every node mounts"):
        _ShardWorker(**missing)


def test_ray_completion_logprobs_come_back_as_local_ones(cluster, tiny_model_dir):
    """Ragged arrays (one log-probability per completion token) travel through Ray Data as its tensor
    extension type: they must come back as the NumPy arrays `local` gives, None where a row did not fit."""
    from humpback.pipelines.augmentation.nodes import instruction_nll
    from tests.conftest import HELDOUT_PAIRS

    model = CheckpointHandle(str(tiny_model_dir))
    llm = params("llm", max_model_len=1024)
    ragged = HELDOUT_PAIRS.copy()
    ragged.loc[1, "reference"] = ragged.loc[1, "reference"] * 400  # longer than the context: not scored
    # one instruction for every row: arrays of one length, which Ray stores as a fixed-shape tensor
    same_length = HELDOUT_PAIRS.assign(instruction=HELDOUT_PAIRS["instruction"].iloc[0])
    # arrays of one length beside a row that did not fit: Ray pickles the column (an object column in
    # a one-dimensional block), and stacked with the next shard's ordinary one pandas failed
    same_length_and_missing = same_length.assign(reference=ragged["reference"])
    # one shard of each (shard_size 4), in one run: each kind, and stacking one kind on another
    shards = [same_length, same_length_and_missing, ragged]
    pairs = pd.concat(shards, ignore_index=True).assign(prompt_id=lambda f: f.index)
    on_ray = instruction_nll(pairs, model, llm, RAY)
    pd.testing.assert_frame_equal(on_ray, instruction_nll(pairs, model, llm, LOCAL))
    assert on_ray["status"].tolist().count("prompt_too_long") == 2
