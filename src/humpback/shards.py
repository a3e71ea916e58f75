"""Resumable LLM stages: results are written in shards as they are made.

A stage's input rows are cut into fixed shards in a stable order. Each finished shard is written
as Parquet under ``<shard_dir>/<stage>-<fingerprint>/``; a run that was killed and started again
reads the finished shards and computes only the missing ones, so no row is generated twice, lost
or duplicated. The fingerprint covers the input rows and every setting that changes the output,
so shards of another configuration are never reused.

This folder is a work cache, like a trainer's checkpoint folder; the stage's real output is the
DataFrame the node returns, saved by the catalog.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)


def fingerprint(frame: pd.DataFrame, key_columns: list[str], settings: dict[str, Any]) -> str:
    """A short hash of the rows' keys and the settings that shape the output."""
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode())
    for values in frame[key_columns].astype(str).itertuples(index=False):
        digest.update("\x1f".join(values).encode() + b"\x1e")
    return digest.hexdigest()[:12]


def run_sharded(
    frame: pd.DataFrame,
    compute: Callable[[list[pd.DataFrame]], Iterable[tuple[int, pd.DataFrame]]],
    *,
    stage: str,
    shard_dir: str | None,
    shard_size: int,
    settings: dict[str, Any],
    key_columns: list[str],
) -> pd.DataFrame:
    """Apply ``compute`` to ``frame`` shard by shard, reusing the shards a previous run finished.

    ``compute`` gets the missing shards and yields ``(position in that list, result)`` as each is
    done, in any order (in this process, or from a cluster, where a later shard may finish first);
    each is written at once, so a kill loses only the shards in flight. A result has one row per
    input row, in order. With ``shard_dir`` None everything is computed in memory (no resume).
    """
    if frame.empty:
        return next(iter(compute([frame])))[1]
    bounds = [(start, min(start + shard_size, len(frame))) for start in range(0, len(frame), shard_size)]
    folder = None
    if shard_dir is not None:
        folder = Path(shard_dir) / f"{stage}-{fingerprint(frame, key_columns, settings)}"
        folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"shard-{number:05d}.parquet" if folder else None for number in range(len(bounds))]
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
