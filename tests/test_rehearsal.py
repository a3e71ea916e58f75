"""The CPU dress rehearsal of each GPU environment (scripts/rehearse.py): its own parameters, the
Llama-3-shaped stand-ins, every node of iteration1 and evaluation, and the checks a GPU run relies on.
Minutes each: marked ``rehearsal`` (``scripts/dev.sh test -m rehearsal``; CI runs them)."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

import rehearse  # noqa: E402


@pytest.mark.rehearsal
@pytest.mark.parametrize("env", rehearse.ENVIRONMENTS)
def test_a_gpu_environment_runs_end_to_end_on_cpu_stand_ins(env, tmp_path, shared_data):
    result = rehearse.rehearse(env, tmp_path, shared_data)

    assert not rehearse.failures(result), result["checks"]
    rows = result["rows"]
    assert rows["seed_pairs"] > 0 and rows["heldout_pairs"] > 0 and rows["candidates"] > 0
    assert rows["iteration1.training_pairs"] >= rows["seed_pairs"]
    assert rows["evaluation.m1.responses"] == rows["report.heldout_pairs"] < rows["heldout_pairs"]
    trainings = result["training"]
    assert all(summary["steps"] == 2 for summary in trainings.values())
    launched = env != "nothumpback_m1"  # the 8-GPU environments launch their trainings
    assert all(summary["processes"] == (2 if launched else 1) for summary in trainings.values())
    assert result["engine"] == ("ray" if launched else "local")
