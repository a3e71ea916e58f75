"""The generation stages on Ray Data, for real, on a local 2-CPU cluster with a tiny model."""

import time
from functools import partial
from pathlib import Path

import pandas as pd
import pytest

from humpback.datasets import CheckpointHandle
from humpback.execution import ExecutionError, map_with_model
from humpback.llm import LLMConfig, SamplingConfig
from humpback.params import GenerationRunParams
from humpback.pipelines.augmentation.nodes import generate_instructions, write_instructions
from humpback.pipelines.curation.nodes import score_candidates
from tests.conftest import TEST_LLM, clean_documents

ray = pytest.importorskip("ray")

SAMPLING = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 16, "seed": 5}
RAY = {"engine": "ray", "shard_size": 4, "ray": {"num_actors": 2, "cpus_per_actor": 0.5, "threads_per_actor": 1, "timeout_s": 300}}


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
    on_ray = generate_instructions(documents, model, TEST_LLM, {"sampling": SAMPLING}, {**RAY, "shard_dir": None})
    local = generate_instructions(documents, model, TEST_LLM, {"sampling": SAMPLING}, {"shard_size": 4, "shard_dir": None})
    pd.testing.assert_frame_equal(on_ray, local)
    assert on_ray["doc_id"].tolist() == documents["doc_id"].tolist()


def test_empty_input_on_ray_gives_the_local_empty_result(cluster, documents, tiny_model_dir):
    """Nothing left to rate or rewrite (e.g. curation kept nothing) must not fail the Ray run."""
    model = CheckpointHandle(str(tiny_model_dir))
    on_ray = generate_instructions(documents.head(0), model, TEST_LLM, {"sampling": SAMPLING}, {**RAY, "shard_dir": None})
    local = generate_instructions(documents.head(0), model, TEST_LLM, {"sampling": SAMPLING}, {"shard_size": 4, "shard_dir": None})
    pd.testing.assert_frame_equal(on_ray, local)
    assert on_ray.empty


def test_ray_ratings_equal_local_ones_with_unrated_rows(cluster, documents, tiny_model_dir):
    """Numbers and missing values come back from Ray as they are made locally (NumPy dtypes, NaN)."""
    pairs = documents.rename(columns={"text": "response"}).assign(instruction="Summarise this.")
    pairs.loc[3, "response"] = pairs.loc[3, "response"] * 20  # longer than the context: not rated
    rater = CheckpointHandle(str(tiny_model_dir), {"role": "seed"})
    llm = TEST_LLM | {"max_model_len": 1024}
    curation = {"scorer": "option_probabilities", "few_shot": 0, "selection": {"method": "threshold", "threshold": 1}}
    on_ray = score_candidates(pairs, rater, llm, curation, {**RAY, "shard_dir": None})
    local = score_candidates(pairs, rater, llm, curation, {"shard_size": 4, "shard_dir": None})
    pd.testing.assert_frame_equal(on_ray, local)
    assert on_ray["score_status"].tolist().count("prompt_too_long") == 1 and on_ray["score"].notna().sum() == len(pairs) - 1


def fail_on_marked_shard(marker: str, flag: str, shard_dir: str, sampling, model, rows: pd.DataFrame) -> pd.DataFrame:
    """write_instructions, except that it fails on the shard holding ``marker`` while ``flag`` exists,
    once another shard is on disk: a failure late in a run (a fixed pause is not enough, Ray may
    drop results it holds but has not handed over when the run fails)."""
    if marker in set(rows["doc_id"]) and Path(flag).exists():
        deadline = time.monotonic() + 120
        while not list(Path(shard_dir).glob("*/shard-*.parquet")) and time.monotonic() < deadline:
            time.sleep(0.1)
        raise RuntimeError("forced failure")
    return write_instructions(sampling, model, rows)


def test_ray_run_resumes_after_a_failure_without_redoing_shards(cluster, documents, tiny_model_dir, tmp_path):
    sampling = SamplingConfig(**SAMPLING)
    flag = tmp_path / "fail"
    flag.touch()
    shard_dir = str(tmp_path / "shards")
    generation = GenerationRunParams.model_validate({**RAY, "shard_dir": shard_dir})
    run = partial(map_with_model, documents, llm=LLMConfig.model_validate(TEST_LLM), model_path=str(tiny_model_dir),
                  generation=generation, stage="augmentation", settings={"sampling": SAMPLING}, key_columns=["doc_id"])
    last = documents["doc_id"].iloc[-1]
    with pytest.raises(Exception, match="forced failure"):
        run(partial(fail_on_marked_shard, last, str(flag), shard_dir, sampling))
    finished = {p: p.stat().st_mtime_ns for p in (tmp_path / "shards").glob("*/shard-*.parquet")}
    assert 0 < len(finished) < 3, "the failure must leave some shards done and some not"

    flag.unlink()
    resumed = run(partial(fail_on_marked_shard, last, str(flag), shard_dir, sampling))
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items()), "a finished shard was computed again"
    expected = generate_instructions(documents, CheckpointHandle(str(tiny_model_dir)), TEST_LLM, {"sampling": SAMPLING},
                                     {"shard_size": 4, "shard_dir": None})
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
    generation = {**RAY, "shard_dir": None, "ray": RAY["ray"] | ray_params}
    with pytest.raises(ExecutionError, match=message):
        generate_instructions(documents, CheckpointHandle(str(tiny_model_dir)), TEST_LLM, {"sampling": SAMPLING}, generation)
