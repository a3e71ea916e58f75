"""Turn whatever a raw catalog entry loads into a pandas DataFrame of records.

The ``base`` environment reads from the Hugging Face Hub (``datasets.Dataset``, ``DatasetDict`` or a
streamed ``IterableDataset``); ``offline`` reads local Parquet/JSONL exports with pandas. Nodes call
:func:`to_frame` first so the selection rules see one type, and a stream is cut to its first
``limit`` records without downloading the rest.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd


class RawDataError(ValueError):
    """Raw input that cannot be read as records at all (as opposed to individual bad records)."""


def to_frame(raw: Any, limit: int | None = None, split: str = "train") -> pd.DataFrame:
    """Return the first ``limit`` records of ``raw`` (all when ``None``) as a DataFrame."""
    if isinstance(raw, pd.DataFrame):
        return raw.head(limit).reset_index(drop=True) if limit is not None else raw.reset_index(drop=True)
    if isinstance(raw, Mapping):  # DatasetDict / IterableDatasetDict
        if split not in raw:
            raise RawDataError(f"split {split!r} not found; available splits: {sorted(raw)}")
        return to_frame(raw[split], limit, split)
    if hasattr(raw, "to_pandas") and hasattr(raw, "select"):  # datasets.Dataset
        if limit is not None:
            raw = raw.select(range(min(limit, len(raw))))
        return raw.to_pandas()
    if isinstance(raw, Iterable):  # datasets.IterableDataset or any iterable of dicts
        rows = list(itertools.islice(iter(raw), limit))
        if rows and not all(isinstance(row, Mapping) for row in rows):
            raise RawDataError("expected an iterable of dict records")
        return pd.DataFrame.from_records(rows)
    raise RawDataError(f"cannot read records from a {type(raw).__name__}")


def require_columns(frame: pd.DataFrame, columns: Iterable[str], source: str) -> None:
    """Fail with one message naming every missing column: a wrong export is not a bad record."""
    missing = [column for column in columns if column not in frame.columns]
    if missing:
        raise RawDataError(
            f"{source}: missing column(s) {missing}; found {list(frame.columns)}. "
            "Exports must keep the Hugging Face record format (docs/environments.md, 'Offline data')."
        )


def stable_order_key(value: str, seed: int) -> str:
    """A pseudo-random but reproducible sort key: caps and samples do not depend on input order."""
    return hashlib.sha256(f"{seed}:{value}".encode()).hexdigest()
