"""scripts/gpu_check.py's CPU-runnable parts: every check runs, on small shapes, and writes its JSON."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_every_gpu_check_runs_on_cpu_and_reports(tmp_path):
    out = tmp_path / "gpu_check.json"
    finished = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cpu", "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    results = json.loads(out.read_text())
    failed = {name: value for name, value in results.items() if isinstance(value, dict) and "error" in value}
    assert finished.returncode == 0 and not failed, failed or finished.stdout[-3000:]
    assert results["backend_parity"]["same_greedy_texts"] == 3  # the CPU against itself: identical
    assert results["training"]["heldout_loss_after"] < results["training"]["heldout_loss_before"]
    step = results["optimizer_step"]
    assert step["checkpointing"]["tokens_per_s"] > 0 and step["no_checkpointing"]["plan_estimate_gib"] > 0
    assert results["fsdp2_launch"]["processes"] == 1 and results["fsdp2_launch"]["steps"] == 2
    assert "gpu check: 5 passed, 0 failed" in finished.stdout
