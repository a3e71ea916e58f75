"""The prompts no model trains on, split by conversation tree into two parts.

The curator's and the backward model's controls, and the judge's, choose and check the run's
settings on the ``selection`` part; the evaluation reports on the ``report`` part. A figure is never
reported on the prompts that chose the settings it measures, and the prompts of one tree (its
first turn, its ranked replies) are never on both sides.
"""

from __future__ import annotations

import pandas as pd

from humpback.data.records import stable_order_key

SELECTION, REPORT = "selection", "report"
PART_COLUMN = "part"


def tree_parts(tree_ids: pd.Series, report_share: float, seed: int) -> pd.Series:
    """Each row's part, drawn once per tree from a seed-stable hash of its id: adding or removing
    other trees never moves a tree to the other part. The hash is salted: the seed pairs are the
    trees first in :func:`stable_order_key`'s order, so its own draw would leave the rest skewed."""
    draw = tree_ids.astype(str).map(lambda tree: int(stable_order_key(f"part:{tree}", seed)[:13], 16) / 16**13)
    return draw.lt(report_share).map({True: REPORT, False: SELECTION}).astype(object)


def in_part(pairs: pd.DataFrame, part: str) -> pd.DataFrame:
    """The rows of one part (``selection`` or ``report``), index reset."""
    if PART_COLUMN not in pairs.columns:
        raise ValueError(
            f"these prompts have no {PART_COLUMN!r} column: they predate the split into selection and report "
            "parts; run the ingestion pipeline again"
        )
    return pairs.loc[pairs[PART_COLUMN] == part].reset_index(drop=True)
