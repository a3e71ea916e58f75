"""Fresh virtual environments for tests that check what a machine other than this one installs."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest


def torch_cpu_sources() -> list[str]:
    """Where uv finds torch's +cpu wheel: a local folder of wheels where one holds it, else PyTorch's
    CPU index (PyPI has only CUDA builds of torch for Linux)."""
    wheels = Path("/opt/wheels")
    if any(wheels.glob("torch-2.13.0+cpu-*.whl")):
        return ["--find-links", str(wheels)]
    return ["--index-strategy", "unsafe-best-match", "--extra-index-url", "https://download.pytorch.org/whl/cpu"]


def uv() -> str:
    found = shutil.which("uv") or shutil.which("uv", path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip("uv is not installed (the dev extra brings it)")
    return found


def run(command: list[str], timeout: int = 600, **kwargs) -> subprocess.CompletedProcess:
    """Run ``command``; a failure to reach the package registry skips the test, any other fails it."""
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False, **kwargs)
    if done.returncode and any(word in done.stderr for word in ("dns error", "Connect", "timed out", "offline")):
        pytest.skip(f"the package registry cannot be reached: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, f"{' '.join(command[:4])}…\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done
