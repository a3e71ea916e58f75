"""Where a stage's language-model work runs, and how it resumes.

Where: in this process (``local``) or on Ray Data (``ray``).

- ``local`` builds the backend once, lazily, and computes the missing shards one after another.
- ``ray`` hands the missing shards to Ray Data from inside the node (Kedro has no Ray runner):
  one block per shard, ``map_batches`` with a pool of actors that each build the project's own
  backend once from its serialisable config. Rows carry their shard number, results come back in
  any order and are put back in place, so the node returns the same rows, in the same order, as
  ``local`` (each shard is computed alone in both, with the same seed).

How it resumes (:func:`run_sharded`, the one resume mechanism): a stage's input rows are cut into
fixed shards in a stable order. Each finished shard is written as Parquet to
``<shard_dir>/<stage>/<key>.parquet``, where the key hashes the settings that shape the output and
the keys of the shard's rows (what the model sees: see :mod:`humpback.engine.runner`). A run that
was killed and started again reads the finished shards and computes only the missing ones, so no
row is generated twice, lost or duplicated; a shard whose rows or settings changed has another key
and is computed again. That folder is a work cache, like a trainer's checkpoint folder; the
stage's real output is the DataFrame the node returns, saved by the catalog.

Work is a picklable callable ``(model, rows) -> result rows`` (a module-level function or a
``functools.partial`` of one), so it can be shipped to actors. Pipelines do not call this module:
they describe a :class:`~humpback.engine.runner.ModelTask` and the runner calls it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.engine.caches import forget_tokenizers
from humpback.engine.memory import release_free_memory
from humpback.llm import LanguageModel, LazyLanguageModel, LLMConfig, build_llm
from humpback.params import GenerationRunParams, RayParams, decided

logger = logging.getLogger(__name__)

Task = Callable[[LanguageModel, pd.DataFrame], pd.DataFrame]
SHARD_COLUMN = "_humpback_shard"


class ExecutionError(RuntimeError):
    """The configured engine cannot run the work as asked (resources, time-out)."""


def map_with_model(
    frame: pd.DataFrame,
    task: Task,
    *,
    llm: LLMConfig,
    model_path: str,
    generation: GenerationRunParams,
    stage: str,
    settings_key: str,
    row_keys: list[str],
) -> pd.DataFrame:
    """Run ``task`` over ``frame`` with the model at ``model_path``, shard by shard, resumably.

    ``settings_key`` and ``row_keys`` (one per row) name each shard (:func:`shard_key`),
    so results of another configuration are never reused. The engine is not part of them: ``local``
    and ``ray`` give the same rows and share finished shards.
    """
    shard_options = {
        "stage": stage,
        "shard_dir": generation.shard_dir,
        "shard_size": generation.shard_size,
        "settings_key": settings_key,
        "row_keys": row_keys,
    }
    if decided(generation.engine, "generation.engine") == "ray":
        return run_sharded(
            frame, lambda shards: _ray_map(shards, task, llm, model_path, generation.ray), **shard_options
        )
    with KEPT_MODEL.model_for(llm, model_path) as model:
        return run_sharded(
            frame, lambda shards: ((n, task(model(), shard)) for n, shard in enumerate(shards)), **shard_options
        )


class KeptModel:
    """The last vLLM engine a ``local`` stage built, kept while the stages that follow ask for it.

    A vLLM engine takes about a minute to start on a CPU (processes, weights, KV cache, warm-up);
    the curator's controls and its rating of the candidates are consecutive nodes on M0. Other
    backends start in seconds and hold their weights in the run's own process: each stage closes
    its own. The run's hooks switch keeping on for the run (:meth:`start`, :meth:`stop`) and close
    the engine before a node that is not a model stage on its checkpoint
    (:meth:`release_unless_read`), so a training never runs beside an idle engine. Outside a Kedro
    run each stage closes its model.
    """

    def __init__(self) -> None:
        self.enabled = False
        self._key: tuple[str, str] | None = None
        self._lazy: LazyLanguageModel | None = None

    def start(self) -> None:
        self.enabled = True

    def stop(self) -> None:
        self.enabled = False
        self.release()

    @contextlib.contextmanager
    def model_for(self, llm: LLMConfig, model_path: str) -> Iterator[Callable[[], LanguageModel]]:
        """A stage's model, built on first use: kept for the stages after it (a vLLM engine in a
        run), else closed when the stage ends."""
        if self.enabled and llm.backend == "vllm":
            yield lambda: self._engine(llm, model_path)
            return
        with LazyLanguageModel(llm, model_path) as lazy:
            yield lazy.get

    @staticmethod
    def _key_of(llm: LLMConfig, model_path: str) -> tuple[str, str]:
        return model_path, llm.model_dump_json()

    def _engine(self, llm: LLMConfig, model_path: str) -> LanguageModel:
        key = self._key_of(llm, model_path)
        if key != self._key:
            self.release()
            forget_tokenizers()  # the stage holds none now; the engine brings its own copy
            release_free_memory()
            self._lazy, self._key = LazyLanguageModel(llm, model_path), key
        return self._lazy.get()

    def built_tokenizer(self, llm: LLMConfig, model_path: str) -> Any | None:
        """The tokenizer of the engine kept for this model, if one is built: a stage renders its
        prompts with it rather than load another copy beside the engine's (321 MiB for Gemma's
        262k vocabulary; the default run's process held 474 MiB less at the rating's start)."""
        kept = self._lazy is not None and self._key == self._key_of(llm, model_path)
        model = self._lazy.built if kept else None
        return None if model is None else model.tokenizer

    def release(self) -> None:
        if self._lazy is not None:
            (model_path, _), lazy = self._key, self._lazy
            self._lazy, self._key = None, None
            lazy.close()
            logger.info("closed the vLLM engine kept for %s", model_path)

    def release_unless_read(self, inputs: Mapping[str, Any]) -> None:
        """Close the kept model unless the node whose ``inputs`` these are is a model stage on its
        checkpoint: it reads ``params:llm`` (a training does not: it would run beside the engine)."""
        read = {value.path for value in inputs.values() if isinstance(value, CheckpointHandle)}
        if self._key is not None and ("params:llm" not in inputs or self._key[0] not in read):
            self.release()


KEPT_MODEL = KeptModel()


def shard_key(settings_key: str, row_keys: list[str]) -> str:
    """A shard's name: the settings and its rows, in order."""
    digest = hashlib.sha256(settings_key.encode())
    for key in row_keys:
        digest.update(key.encode())
    return digest.hexdigest()[:16]


def run_sharded(
    frame: pd.DataFrame,
    compute: Callable[[list[pd.DataFrame]], Iterable[tuple[int, pd.DataFrame]]],
    *,
    stage: str,
    shard_dir: str | None,
    shard_size: int,
    settings_key: str,
    row_keys: list[str],
) -> pd.DataFrame:
    """Apply ``compute`` to ``frame`` shard by shard, reusing the shards a previous run finished.

    ``compute`` gets the missing shards and yields ``(position in that list, result)`` as each is
    done, in any order (in this process, or from a cluster, where a later shard may finish first);
    each is written at once, so a kill loses only the shards in flight. A result has one row per
    input row, in order. With ``shard_dir`` None everything is computed in memory (no resume).
    ``frame`` must not be empty (the runner answers empty inputs without a model).
    """
    if len(row_keys) != len(frame) or frame.empty:
        raise ValueError(f"{stage}: {len(row_keys)} row keys for {len(frame)} rows (at least one)")
    bounds = [(start, min(start + shard_size, len(frame))) for start in range(0, len(frame), shard_size)]
    folder = None
    if shard_dir is not None:
        folder = Path(shard_dir) / stage
        folder.mkdir(parents=True, exist_ok=True)
    paths = [
        folder / f"{shard_key(settings_key, row_keys[start:stop])}.parquet" if folder else None
        for start, stop in bounds
    ]
    parts: dict[int, pd.DataFrame] = {
        number: pd.read_parquet(path) for number, path in enumerate(paths) if path is not None and path.is_file()
    }
    if parts:
        logger.info("%s: resumed %d of %d shards from %s", stage, len(parts), len(bounds), folder)
    missing = [number for number in range(len(bounds)) if number not in parts]
    results = compute([frame.iloc[bounds[number][0] : bounds[number][1]] for number in missing])
    for position, part in results:
        number = missing[position]
        start, stop = bounds[number]
        if len(part) != stop - start:
            raise RuntimeError(f"{stage}: shard {number} returned {len(part)} rows for {stop - start}")
        if paths[number] is not None:
            tmp = paths[number].with_suffix(".partial")
            part.to_parquet(tmp, index=False)
            os.replace(tmp, paths[number])  # a kill mid-write leaves no half shard behind
        parts[number] = part
        logger.info("%s: shard %d/%d done (%d of %d shards)", stage, number + 1, len(bounds), len(parts), len(bounds))
    if len(parts) != len(bounds):
        raise RuntimeError(f"{stage}: {len(bounds) - len(parts)} shards were not computed")
    return pd.concat([parts[number] for number in range(len(bounds))], ignore_index=True)


class _ShardWorker:
    """A Ray actor: builds the backend once, then runs the task on each shard of a batch alone."""

    def __init__(self, task: Task, llm: dict, model_path: str, threads: int) -> None:
        import socket

        import torch

        if not Path(model_path).exists() and Path(model_path).is_absolute():
            raise ExecutionError(
                f"model folder {model_path} does not exist on Ray node {socket.gethostname()}: on a cluster of "
                "several machines, keep the project's data folder on storage every node mounts at the same path"
            )
        torch.set_num_threads(threads)  # Ray sets OMP_NUM_THREADS per actor; torch needs telling too
        self.task = task
        self.model = build_llm({**llm, "num_threads": threads}, model_path)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        parts = []
        for shard, rows in batch.groupby(SHARD_COLUMN, sort=False):
            result = self.task(self.model, rows.drop(columns=SHARD_COLUMN).reset_index(drop=True))
            parts.append(result.reset_index(drop=True).assign(**{SHARD_COLUMN: shard}))
        return pd.concat(parts, ignore_index=True)


def _ray_map(
    shards: list[pd.DataFrame], task: Task, llm: LLMConfig, model_path: str, params: RayParams
) -> Iterator[tuple[int, pd.DataFrame]]:
    """Yield ``(shard position, result)`` as Ray Data finishes each shard, in any order."""
    if not shards:
        return
    decided(params.num_actors, "generation.ray.num_actors")
    _connect(params)
    import ray

    _check_resources(params)
    actors = min(params.num_actors, len(shards))  # no idle actor loading a model copy
    blocks = [shard.reset_index(drop=True).assign(**{SHARD_COLUMN: number}) for number, shard in enumerate(shards)]
    mapped = ray.data.from_pandas(blocks).map_batches(
        _ShardWorker,
        fn_constructor_kwargs=actor_arguments(task, llm, model_path, params),
        batch_size=None,  # a whole block: one shard per call, as in `local`
        batch_format="pandas",
        # one shard at a time per actor: a shard is minutes of work, so queueing one behind another
        # leaves an actor idle at the end, and behind a failing one it is never returned
        compute=ray.data.ActorPoolStrategy(size=actors, max_tasks_in_flight_per_actor=1),
        num_cpus=params.cpus_per_actor,
        num_gpus=params.gpus_per_actor or None,
    )
    # actors the cluster cannot start make Ray Data fail after this long instead of waiting forever
    ray.data.DataContext.get_current().wait_for_min_actors_s = int(params.actor_start_timeout_s)
    deadline = time.monotonic() + params.timeout_s
    arrived: dict[int, list[pd.DataFrame]] = {}
    returned = 0
    try:
        # Arrow batches converted here, not Ray's pandas batches: those carry Arrow-backed dtypes
        # (`double[pyarrow]`, nulls as NA) where `local` gives NumPy ones (NaN)
        for batch in mapped.iter_batches(batch_size=None, batch_format="pyarrow"):
            for shard, rows in _as_local(batch.to_pandas()).groupby(SHARD_COLUMN, sort=False):
                shard = int(shard)
                arrived.setdefault(shard, []).append(rows)
                if sum(map(len, arrived[shard])) == len(shards[shard]):
                    yield shard, pd.concat(arrived.pop(shard), ignore_index=True).drop(columns=SHARD_COLUMN)
                    returned += 1
            if time.monotonic() > deadline:
                raise ExecutionError(
                    f"Ray run exceeded generation.ray.timeout_s={params.timeout_s:g} s with {returned} of "
                    f"{len(shards)} shards back; finished shards are kept and a restart resumes from them"
                )
    except ray.exceptions.GetTimeoutError as error:
        raise ExecutionError(
            f"Ray could not start {actors} actors with {params.cpus_per_actor:g} CPUs and "
            f"{params.gpus_per_actor:g} GPUs each within generation.ray.actor_start_timeout_s="
            f"{params.actor_start_timeout_s:g} s: the cluster lacks the resources (`ray status` shows them)"
        ) from error
    if returned < len(shards):
        raise ExecutionError(f"Ray returned {returned} of {len(shards)} shards")


def _as_local(frame: pd.DataFrame) -> pd.DataFrame:
    """Give Ray Data's columns back as ``local`` returns them: plain object columns of NumPy arrays.

    Ray hands arrays back as its tensor extension type (``TensorArrayElement`` values, or a whole
    ``TensorDtype`` column where every array of a block had one length), and a column it could not
    convert to Arrow (arrays of one length beside a None) as pickled objects in a one-dimensional
    block, which pandas cannot stack with an ordinary shard's column.
    """
    for column in frame.columns:
        dtype = frame[column].dtype
        from_ray = type(dtype).__module__.startswith("ray.")  # TensorDtype, PythonObjectDtype
        if from_ray or pd.api.types.is_object_dtype(dtype):
            values = (value.to_numpy() if _is_ray_tensor(value) else value for value in frame[column])
            # fromiter: an object array of arrays, never broadcast into a 2-D float array
            frame[column] = pd.Series(np.fromiter(values, dtype=object, count=len(frame)), index=frame.index)
    return frame


def _is_ray_tensor(value: Any) -> bool:
    return type(value).__name__ == "TensorArrayElement"


def actor_arguments(task: Task, llm: LLMConfig, model_path: str, params: RayParams) -> dict[str, Any]:
    """What each actor is built from. A local model folder travels as an absolute path: actors run in
    working directories of Ray's choosing, and on other machines (which must mount it at the same path)."""
    local = Path(model_path)
    return {
        "task": task,
        "llm": llm.model_dump(),
        "model_path": str(local.resolve()) if local.exists() else model_path,  # else a Hub id
        "threads": params.threads_per_actor,
    }


def _connect(params: RayParams) -> None:
    try:
        import ray
    except ImportError as error:
        raise ExecutionError(
            'generation.engine is ray but Ray is not installed: pip install -e ".[ray]" (or use engine: local)'
        ) from error

    if ray.is_initialized():
        return
    # actors' output reaches this log: their errors (a missing folder, an engine that cannot start) are seen
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
    if params.address is None:
        options["num_cpus"] = params.num_cpus  # a local cluster for this run
    ray.init(address=params.address, **options)
    logger.info("Ray: connected to %s with %s", params.address or "a local cluster", ray.cluster_resources())


def _check_resources(params: RayParams) -> None:
    """Refuse what the cluster cannot give, instead of waiting for it forever."""
    import ray

    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    if params.gpus_per_actor > gpus:
        raise ExecutionError(
            f"generation.ray.gpus_per_actor={params.gpus_per_actor:g} but the Ray cluster has {gpus:g} GPUs"
        )
    if params.cpus_per_actor * params.num_actors >= cpus:
        raise ExecutionError(
            f"{params.num_actors} actors × {params.cpus_per_actor:g} CPUs take all {cpus:g} CPUs of the Ray cluster: "
            "Ray Data's read task could never be scheduled and the run would hang. Lower generation.ray.cpus_per_actor."
        )
