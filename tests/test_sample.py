"""The quick start's raw data on a fresh machine: local exports, else the shared sample, else the Hub
(here a local stand-in laid out as the Hub's repositories are), else one line of advice."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from humpback.data.sample import SAMPLE_DOCUMENTS, SAMPLE_FILES, main
from tests.conftest import REPO_ROOT, make_project
from tests.test_run import run

C4_CARD = """---
configs:
- config_name: en
  data_files:
  - split: train
    path: en/c4-train.*.json.gz
  - split: validation
    path: en/c4-validation.*.json.gz
---
"""


@pytest.fixture(scope="module")
def hub(tmp_path_factory, oasst1_messages, c4_documents) -> dict[str, str]:
    """Local copies of OpenAssistant/oasst1 (Parquet splits under data/, other languages included)
    and allenai/c4 (its `en` config of gzipped JSON Lines shards, named in the card as on the Hub)."""
    root = tmp_path_factory.mktemp("hub")
    oasst1 = root / "OpenAssistant--oasst1" / "data"
    oasst1.mkdir(parents=True)
    other_language = oasst1_messages.head(50).assign(lang="es", message_id=lambda f: "es-" + f["message_id"])
    pd.concat([oasst1_messages, other_language]).to_parquet(oasst1 / "validation-00000-of-00001.parquet", index=False)
    oasst1_messages.head(10).to_parquet(oasst1 / "train-00000-of-00001.parquet", index=False)
    c4 = root / "allenai--c4"
    (c4 / "en").mkdir(parents=True)
    (c4 / "README.md").write_text(C4_CARD)
    records = c4_documents.assign(timestamp=c4_documents["timestamp"].astype(str)).to_dict("records")
    shards = [records[:600], records[600:] * 2]  # 1,400 records: the fetch stops at 1,000
    for index, shard in enumerate(shards):
        with gzip.open(c4 / "en" / f"c4-train.{index:05d}-of-01024.json.gz", "wt") as handle:
            handle.writelines(json.dumps(record) + "\n" for record in shard)
    with gzip.open(c4 / "en" / "c4-validation.00000-of-00008.json.gz", "wt") as handle:
        handle.write(json.dumps(records[0]) + "\n")
    return {"oasst1": str(root / "OpenAssistant--oasst1"), "c4": str(c4)}


def fetch(project: Path, hub: dict[str, str], *extra: str) -> int:
    return main(
        [
            "--fetch",
            f"--raw-dir={project / 'data/01_raw'}",
            f"--sample-dir={project / 'no-shared-sample'}",
            f"--oasst1-dataset={hub['oasst1']}",
            f"--c4-dataset={hub['c4']}",
            *extra,
        ]
    )


@pytest.fixture
def fresh_project(tmp_path) -> Path:
    """A project with no raw data and no shared sample beside it."""
    project = make_project(tmp_path, tmp_path / "nowhere")
    assert not any((project / "data/01_raw").iterdir())
    return project


def test_fetch_writes_the_offline_environments_inputs_from_the_hub(fresh_project, hub, oasst1_messages, c4_documents):
    assert fetch(fresh_project, hub) == 0

    raw = fresh_project / "data/01_raw"
    messages = pd.read_parquet(raw / SAMPLE_FILES["oasst1_sample.parquet"])
    documents = pd.read_parquet(raw / SAMPLE_FILES["c4_en_sample.parquet"])
    assert len(messages) == len(oasst1_messages) and (messages["lang"] == "en").all()  # validation, English
    assert len(documents) == SAMPLE_DOCUMENTS and documents["text"].tolist() == c4_documents["text"].tolist()
    run(fresh_project, "ingestion")  # the offline catalog reads what was fetched
    assert len(pd.read_parquet(fresh_project / "data/03_primary/seed_pairs.parquet")) == 40


def test_local_exports_are_used_as_they_are(fresh_project, hub, c4_documents):
    own = fresh_project / "data/01_raw" / SAMPLE_FILES["c4_en_sample.parquet"]
    c4_documents.head(7).to_parquet(own)
    assert fetch(fresh_project, hub) == 0
    assert len(pd.read_parquet(own)) == 7  # only the missing oasst1 export was fetched


def test_without_the_hub_one_line_says_how_to_provide_the_data(fresh_project, tmp_path):
    script = [sys.executable, "-m", "humpback.data.sample", "--fetch", "--sample-dir", str(tmp_path / "none")]
    missing = ["--oasst1-dataset", str(tmp_path / "no-such-dataset"), "--c4-dataset", str(tmp_path / "no-such")]
    result = subprocess.run(script + missing, cwd=fresh_project, capture_output=True, text=True, timeout=120)

    assert result.returncode == 1
    advice = [line for line in result.stdout.splitlines() if line.startswith("no raw data")]
    assert len(advice) == 1 and "oasst1_messages.parquet and c4_en_documents.parquet" in advice[0]


@pytest.mark.parametrize("arguments, fetches", [(["--env", "offline"], True), (["--env=test"], False), ([], False)])
def test_dev_script_fetches_for_an_offline_run_only(tmp_path, arguments, fetches):
    """`scripts/dev.sh run` on a set-up environment whose python and kedro only record their
    arguments: the sample step asks for the Hub fetch exactly when the run is offline."""
    venv, calls = tmp_path / "venv", tmp_path / "calls"
    (venv / "bin").mkdir(parents=True)
    for tool in ("python", "kedro"):
        shim = venv / "bin" / tool
        shim.write_text(f'#!/bin/sh\necho "{tool} $*" >> {calls}\n')
        shim.chmod(0o755)
    (venv / ".humpback-installed").write_text("cpu\n")  # newer than the set, pyproject and the script: no set-up
    environment = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HUMPBACK_VENV": str(venv)}
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts/dev.sh"), "run", *arguments],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    python_call, kedro_call = calls.read_text().splitlines()
    assert python_call.startswith("python -m humpback.data.sample --quiet")
    assert ("--fetch" in python_call) is fetches
    assert kedro_call == " ".join(["kedro run --pipeline=iteration1", *arguments]).strip()
