"""A generation stage killed in the middle continues where it stopped when started again."""

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from humpback.datasets import CheckpointHandle
from humpback.engine.execution import run_sharded, shard_key
from humpback.pipelines.augmentation.nodes import generate_instructions
from tests.conftest import TEST_LLM, clean_documents, params

AUGMENTATION = params("augmentation", sampling={"max_new_tokens": 48, "seed": 3})

WORKER = """
import sys, pandas as pd
from humpback.datasets import CheckpointHandle
from humpback.pipelines.augmentation.nodes import generate_instructions
from tests.conftest import TEST_LLM, params
from tests.test_resume import AUGMENTATION
documents, model, shards = sys.argv[1:]
generation = params("generation", shard_dir=shards, shard_size=1)
generate_instructions(pd.read_parquet(documents), CheckpointHandle(model), TEST_LLM, AUGMENTATION, generation)
"""


def test_killed_run_resumes_without_redoing_or_losing_rows(c4_documents, tiny_model_dir, tmp_path):
    documents = clean_documents(c4_documents.head(80))[0].head(24)
    documents.to_parquet(tmp_path / "documents.parquet")
    shards = tmp_path / "shards"

    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tmp_path / "documents.parquet"), str(tiny_model_dir), str(shards)],
        cwd=os.getcwd(),
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    deadline = time.monotonic() + 120
    while not list(shards.glob("augmentation/*.parquet")) and time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.01)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    finished = {path: path.stat().st_mtime_ns for path in shards.glob("augmentation/*.parquet")}
    assert 0 < len(finished) < len(documents), "the worker must be killed mid-run"

    resumed = generate_instructions(
        documents,
        CheckpointHandle(str(tiny_model_dir)),
        TEST_LLM,
        AUGMENTATION,
        params("generation", shard_dir=str(shards), shard_size=1),
    )
    for path, mtime in finished.items():
        assert path.stat().st_mtime_ns == mtime, "a finished shard was generated again"
    assert len(list(shards.glob("augmentation/*.parquet"))) == len(documents)
    assert resumed["doc_id"].tolist() == documents["doc_id"].tolist()

    uninterrupted = generate_instructions(
        documents,
        CheckpointHandle(str(tiny_model_dir)),
        TEST_LLM,
        AUGMENTATION,
        params("generation", shard_dir=None, shard_size=1),
    )
    pd.testing.assert_frame_equal(resumed, uninterrupted)


def test_shards_finished_out_of_order_are_kept_when_the_run_fails(tmp_path):
    """A cluster can finish a later shard before an earlier one fails: the later one must be on disk."""
    frame = pd.DataFrame({"key": [f"row {i}" for i in range(6)]})
    keys = frame["key"].tolist()
    options = {"stage": "demo", "shard_dir": str(tmp_path), "shard_size": 2, "settings_key": "s", "row_keys": keys}
    upper = lambda rows: rows.assign(key=rows["key"].str.upper())  # noqa: E731

    def last_then_failure(shards):
        yield 2, upper(shards[2])
        raise RuntimeError("shard 0 failed")

    with pytest.raises(RuntimeError, match="shard 0 failed"):
        run_sharded(frame, last_then_failure, **options)
    assert [p.name for p in tmp_path.glob("demo/*.parquet")] == [f"{shard_key('s', keys[4:6])}.parquet"]

    computed = []

    def in_reverse(shards):
        computed.extend(rows["key"].iloc[0] for rows in shards)
        yield from ((n, upper(shards[n])) for n in reversed(range(len(shards))))

    result = run_sharded(frame, in_reverse, **options)
    assert computed == ["row 0", "row 2"]  # only the two missing shards
    assert result["key"].tolist() == [f"ROW {i}" for i in range(6)]
