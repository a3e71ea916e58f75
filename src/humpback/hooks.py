"""Project hooks: fail fast on bad parameters or missing raw data, with one clear message."""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl
from kedro.io import MemoryDataset

from humpback.engine.memory import release_free_memory
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


class NodeResourceHooks:
    """Log each node's wall time and the process's memory: long CPU runs are measured.

    Before each node, memory the nodes before it freed (a trained model, its optimizer) goes back:
    to the operating system (glibc keeps freed heap pages otherwise), and on a GPU to the driver
    (torch's caching allocator keeps freed blocks otherwise). The next node's vLLM engine checks the
    GPU's free memory against ``gpu_memory_utilization`` and would refuse to start. This runs before
    a node, not after one: Kedro saves a node's outputs after its after-node hooks, so only then is
    a trained model no longer referenced.
    """

    def __init__(self) -> None:
        self._started: dict[str, float] = {}

    @hook_impl
    def before_node_run(self, node) -> None:
        release_free_memory()
        self._started[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node) -> None:
        seconds = time.perf_counter() - self._started.pop(node.name, time.perf_counter())
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        logger.info("node %s took %.1f s; peak RSS so far %.0f MiB", node.name, seconds, peak_mib)
