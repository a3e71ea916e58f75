"""Resumable LLM stages: results are written in shards as they are made.

A stage's input rows are cut into fixed shards in a stable order. Each finished shard is written
as Parquet to ``<shard_dir>/<stage>/<key>.parquet``, where the key hashes the settings that shape
the output and the keys of the shard's rows (what the model sees: see :mod:`humpback.runner`). A
run that was killed and started again reads the finished shards and computes only the missing
ones, so no row is generated twice, lost or duplicated; a shard whose rows or settings changed has
another key and is computed again.

This folder is a work cache, like a trainer's checkpoint folder; the stage's real output is the
DataFrame the node returns, saved by the catalog.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path

import pandas as pd

logger = logging.getLogger(__name__)


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
