"""Project hooks: fail fast on bad parameters or missing raw data, with one clear message."""

from __future__ import annotations

import logging
import math
import os
import resource
import signal
import threading
import time
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset

from humpback.engine.execution import KEPT_MODEL
from humpback.engine.memory import release_free_memory
from humpback.llm.platform import (
    check_backend,
    machine_decisions,
    parameter_blocks,
    plain_parameters,
    planned_gpus,
    with_value,
)
from humpback.params import validate_parameters

logger = logging.getLogger(__name__)

OFFLINE_HINT = (
    "Without access to the Hugging Face Hub, run with `--env offline` and put local exports of "
    "OpenAssistant/oasst1 and allenai/c4 (en) in data/01_raw/ (docs/environments.md, 'Offline data')."
)


class MissingRawDataError(FileNotFoundError):
    """A raw input file of the run does not exist."""


class ValidateParametersHook:
    """Check every parameter block when the run starts, all problems in one message. (Kedro then
    turns each node's typed ``params:`` inputs into these models' objects.)"""

    @hook_impl
    def after_context_created(self, context) -> None:
        validate_parameters(dict(context.config_loader["parameters"]))


class MachineSettingsHooks:
    """Decide the run's ``auto`` settings for this machine before the first node, and stop at once
    when a backend named explicitly cannot start here.

    The decisions replace the ``auto`` values in every parameter dataset the nodes read (``params:llm``,
    ``params:llm.backend``, …, and ``parameters``, which the run's configuration snapshot records),
    so cache keys and model cards say what ran. A pipeline that reads ``params:plan`` sizes the
    machine ``plan.device`` describes, not this one: its device counts come from there."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        names = [name for name in catalog if name == "parameters" or name.startswith("params:")]
        parameters = {name: catalog.get(name).load() for name in names}
        tree = plain_parameters(parameters.get("parameters", {}))
        gpus = planned_gpus(tree) if "params:plan" in pipeline.inputs() else None
        decided = machine_decisions(tree, gpus)
        for path, choice in decided.items():
            for name, value in list(parameters.items()):
                held = [] if name == "parameters" else name.removeprefix("params:").split(".")
                steps = path.split(".")
                if steps[: len(held)] == held:
                    parameters[name] = with_value(value, steps[len(held) :], choice)
                    catalog[name] = MemoryDataset(parameters[name])
        for path, choice in decided.items():
            logger.info("machine setting: %s = %s", path, choice)
        for path, value in parameter_blocks(tree, "llm"):
            check_backend(str(decided.get(f"{path}.backend", value.get("backend"))))


class RawDataHooks:
    """Check raw inputs before any node runs; explain Hub failures in terms of the environments."""

    @hook_impl
    def before_pipeline_run(self, run_params: dict[str, Any], pipeline, catalog) -> None:
        missing = []
        for name in sorted(pipeline.inputs()):
            if name.startswith("params:") or name == "parameters" or name not in catalog:
                continue
            # Only file-backed datasets are checked: describing a Hub dataset would call the Hub.
            dataset = catalog.get(name)
            filepath = getattr(dataset, "_filepath", None)
            if filepath is not None and not Path(str(filepath)).exists():
                if (getattr(dataset, "metadata", None) or {}).get("optional"):
                    # an input that only adds to what the run measures: the run goes on without it
                    logger.warning("optional input %s not found at %s: the run goes on without it", name, filepath)
                    catalog[name] = MemoryDataset([])
                    continue
                missing.append(f"{name}: {filepath}")
        if missing:
            raise MissingRawDataError("raw input(s) not found:\n  - " + "\n  - ".join(missing) + f"\n{OFFLINE_HINT}")

    @hook_impl
    def on_pipeline_error(self, error: Exception, run_params: dict[str, Any], pipeline, catalog) -> None:
        text = f"{error!r} {error.__cause__!r}"
        if any(marker in text for marker in ("huggingface.co", "HFDataset", "ConnectionError", "OfflineMode")):
            logger.error("Could not read a dataset from the Hugging Face Hub. %s", OFFLINE_HINT)


class RunStopped(SystemExit):
    """The run received SIGTERM: raised in the node that was running, so its ``finally`` blocks and
    context managers shut down what it started (a vLLM engine's processes, a launched training)."""


class StopHooks:
    """Turn SIGTERM into an exception, as Ctrl-C already is. Python's default for SIGTERM ends the
    process at once, cleanup skipped: vLLM's engine-core process, which does not watch its parent,
    would go on running (at full CPU) after a stopped run."""

    @hook_impl
    def before_pipeline_run(self) -> None:
        if threading.current_thread() is threading.main_thread():  # signal handlers live there only
            signal.signal(signal.SIGTERM, _raise_run_stopped)


def _raise_run_stopped(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends the process outright
    raise RunStopped(128 + signum)


class NodeResourceHooks:
    """Log each node's wall time and the process's memory: long CPU runs are measured.

    Before each node, memory the nodes before it freed (a trained model, its optimizer) goes back:
    to the operating system (glibc keeps freed heap pages otherwise), and on a GPU to the driver
    (torch's caching allocator keeps freed blocks otherwise). The next node's vLLM engine checks the
    GPU's free memory against ``gpu_memory_utilization`` and would refuse to start. This runs before
    a node, not after one: Kedro saves a node's outputs after its after-node hooks, so only then is
    a trained model no longer referenced.

    A model stage's model stays built for the model stages after it on the same checkpoint (the
    curator's controls, then its rating): it is closed before the first other node (a training
    from that checkpoint included), and when the run ends or fails.
    """

    def __init__(self) -> None:
        self._started: dict[str, tuple[float, float]] = {}

    @hook_impl
    def before_pipeline_run(self) -> None:
        KEPT_MODEL.start()

    @hook_impl
    def after_pipeline_run(self) -> None:
        KEPT_MODEL.stop()

    @hook_impl
    def on_pipeline_error(self) -> None:
        KEPT_MODEL.stop()

    @hook_impl
    def before_node_run(self, node, inputs: dict[str, Any]) -> None:
        KEPT_MODEL.release_unless_read(inputs)
        release_free_memory()
        self._started[node.name] = (time.perf_counter(), _resident_mib())

    @hook_impl
    def after_node_run(self, node) -> None:
        started, resident_mib = self._started.pop(node.name, (time.perf_counter(), math.nan))
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        logger.info(
            "node %s took %.1f s; RSS %.0f MiB at its start (what earlier nodes left), peak RSS so far %.0f MiB",
            node.name,
            time.perf_counter() - started,
            resident_mib,
            peak_mib,
        )


def _resident_mib() -> float:
    """This process's resident memory now (Linux; NaN elsewhere)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return math.nan
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
