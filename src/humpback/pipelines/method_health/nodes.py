"""One table of the run's checks: each check, its value, interval, threshold and pass/fail.

The stages make their own checks (the backward model's in augmentation, the curator's in curation,
the judge's in evaluation) as rows of :mod:`humpback.reports.health`, each verdict decided there; this node
only lays them out side by side, with a figure that ``kedro viz`` previews, and says once per
failing check what failed.
"""

from __future__ import annotations

import logging

import pandas as pd
import plotly.graph_objects as go

from humpback.reports.health import COLUMNS

logger = logging.getLogger(__name__)


def method_health_report(*checks: dict) -> tuple[pd.DataFrame, go.Figure]:
    """The checks' rows as one table (informative rows have no threshold) and a figure of them."""
    table = pd.DataFrame([row for check in checks for row in check["rows"]], columns=COLUMNS)
    for row in table.loc[table["passed"].eq(False)].itertuples():
        logger.warning(
            "METHOD HEALTH CHECK FAILED: %s: %s = %.3f (needs %s)", row.model, row.check, row.value, row.threshold
        )
    colours = table["passed"].map({True: "seagreen", False: "crimson"}).fillna("grey")
    figure = go.Figure(
        go.Bar(
            y=[f"{m}: {c}" for m, c in zip(table["model"], table["check"], strict=True)],
            x=table["value"],
            orientation="h",
            marker_color=colours.tolist(),
            error_x={
                "type": "data",
                "symmetric": False,
                "array": (table["ci_high"] - table["value"]).tolist(),
                "arrayminus": (table["value"] - table["ci_low"]).tolist(),
            },
            text=table["threshold"],
        )
    )
    figure.update_layout(
        title="Method health: green passed, red failed, grey informative", yaxis={"autorange": "reversed"}
    )
    return table, figure
