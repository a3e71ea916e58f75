"""Wall time and peak memory of a whole command's process tree (a run and the vLLM engine beside it).

    python benchmarks/run_resources.py --out run_resources.json -- kedro run --pipeline=iteration1 --env offline

Every ``--interval`` seconds it sums the proportional set size (PSS: shared pages split between the
processes that share them, so a page counts once) of the command and all its descendants, and keeps
the peak with each process's share of it (which process to slim); the command's own output passes
through. Linux only (``/proc/<pid>/smaps_rollup``).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

GIB = 2**30


def tree_pss(root: psutil.Process) -> list[dict]:
    """PSS of ``root`` and of each of its descendants still alive, named by their command line."""
    processes = []
    for process in [root, *root.children(recursive=True)]:
        try:
            pss = process.memory_full_info().pss
            name = " ".join(process.cmdline())[:120] or process.name()
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
        processes.append({"pid": process.pid, "command": name, "pss_gib": round(pss / GIB, 2)})
    return processes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    started = time.monotonic()
    child = subprocess.Popen(command)
    root = psutil.Process(child.pid)
    peak = {"pss_gib": 0.0, "at_s": 0.0, "processes": []}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            processes = tree_pss(root)
            total = round(sum(process["pss_gib"] for process in processes), 2)
            if total > peak["pss_gib"]:
                peak.update(pss_gib=total, at_s=round(time.monotonic() - started), processes=processes)
            done.wait(args.interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    returncode = child.wait()
    done.set()
    sampler.join()
    result = {"command": command, "returncode": returncode, "wall_s": round(time.monotonic() - started), "peak": peak}
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result), file=sys.stderr)
    return returncode


if __name__ == "__main__":
    raise SystemExit(main())
