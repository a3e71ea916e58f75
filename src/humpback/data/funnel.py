"""Count what every filtering rule drops, so no record disappears without a trace."""

from __future__ import annotations

import logging

import pandas as pd

logger = logging.getLogger(__name__)

FUNNEL_COLUMNS = ["source", "step", "rule", "dropped", "remaining"]


class Funnel:
    """Applies drop rules to a DataFrame in order and records one row per rule.

    Each row says how many records the rule removed and how many were left after it, so a report
    reads top to bottom like the stages of the pipeline.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self._rows: list[dict] = []

    def start(self, frame: pd.DataFrame, step: str = "input") -> pd.DataFrame:
        self._rows.append({"source": self.source, "step": step, "rule": "input", "dropped": 0, "remaining": len(frame)})
        return frame

    def drop(self, frame: pd.DataFrame, mask, rule: str, step: str = "records") -> pd.DataFrame:
        """Remove the rows where ``mask`` (aligned with ``frame``) is true; count them under ``rule``."""
        mask = pd.Series(mask, index=frame.index) if not isinstance(mask, pd.Series) else mask
        mask = mask.fillna(False).astype(bool)
        kept = frame.loc[~mask]
        dropped = int(mask.sum())
        self._rows.append(
            {"source": self.source, "step": step, "rule": rule, "dropped": dropped, "remaining": len(kept)}
        )
        if dropped:
            logger.info("%s: %s dropped %d, %d remain", self.source, rule, dropped, len(kept))
        return kept

    def count(self, mask, rule: str, step: str = "records") -> None:
        """Record how many rows ``mask`` marks for ``rule`` without removing them (a part of each row
        left out, such as a system prompt): ``dropped`` says how many rows it touched."""
        touched = int(pd.Series(mask).fillna(False).astype(bool).sum())
        remaining = self._rows[-1]["remaining"] if self._rows else len(mask)
        self._rows.append(
            {"source": self.source, "step": step, "rule": rule, "dropped": touched, "remaining": remaining}
        )
        if touched:
            logger.info("%s: %s in %d rows, %d remain", self.source, rule, touched, remaining)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(self._rows, columns=FUNNEL_COLUMNS)
