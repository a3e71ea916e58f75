"""One table of the run's checks: each check, its value, interval, threshold and pass/fail.

The stages compute their own checks (the backward model's in augmentation, the curator's in
curation, the judge's in evaluation); this node only lays them out side by side, with a figure
that ``kedro viz`` previews, and says once per failing check what failed.
"""

from __future__ import annotations

import logging
import math

import pandas as pd
import plotly.graph_objects as go

logger = logging.getLogger(__name__)

COLUMNS = ["model", "check", "value", "ci_low", "ci_high", "threshold", "passed"]
NAN = math.nan


def _row(model: str, check: str, value, low=NAN, high=NAN, threshold: str = "", passed=None) -> dict:
    return dict(zip(COLUMNS, [model, check, value, low, high, threshold, passed], strict=True))


def _backward_rows(check: dict) -> list[dict]:
    model = "backward model"
    return [
        _row(
            model,
            "held-out true-instruction NLL − base model's (nats/token)",
            check["nll_difference"],
            check["nll_difference_ci_low"],
            check["nll_difference_ci_high"],
            "interval < 0",
            bool(check["nll_difference_ci_high"] < 0),
        ),
        _row(
            model,
            "request-like share of usable instructions",
            check["request_like_share"],
            threshold=f"≥ {check['min_request_like_share']}",
            passed=bool(check["request_like_share"] >= check["min_request_like_share"]),
        ),
        _row(
            model,
            "echo share of outputs",
            check["echo_share"],
            threshold=f"≤ {check['max_echo_share']}",
            passed=bool(check["echo_share"] <= check["max_echo_share"]),
        ),
    ]


def _curator_rows(check: dict) -> list[dict]:
    model = f"curator ({check['rater']})"
    rows = [
        _row(
            model,
            f"ROC AUC human vs {other} pairs",
            check[f"auc_vs_{other}"],
            check[f"auc_vs_{other}_ci_low"],
            check[f"auc_vs_{other}_ci_high"],
            f"≥ {check['min_control_auc']}",
            bool(check[f"auc_vs_{other}"] >= check["min_control_auc"]),
        )
        for other in ("mismatched", "web")
    ]
    return rows + [
        _row(model, f"spread of its {check['ranking']} (sd)", check["score_spread"]),
        _row(model, "control pairs rated", check["rated_share"]),
    ]


def _judge_rows(check: dict) -> list[dict]:
    model = f"judge ({check['judge']})"
    return [
        _row(
            model,
            "picks the human answer over another prompt's",
            check["control_accuracy"],
            check["control_accuracy_ci_low"],
            check["control_accuracy_ci_high"],
            f"≥ {check['min_control_accuracy']}",
            bool(check["control_accuracy"] >= check["min_control_accuracy"]),
        ),
        _row(
            model,
            "same verdict in both orders",
            check["order_consistency"],
            threshold=f"≥ {check['min_order_consistency']}",
            passed=bool(check["order_consistency"] >= check["min_order_consistency"]),
        ),
        _row(model, "first-position rate (0.5: no position bias)", check["first_position_rate"]),
    ]


def _rows(check: dict) -> list[dict]:
    if "request_like_share" in check:
        return _backward_rows(check)
    if "auc_vs_mismatched" in check:
        return _curator_rows(check)
    if "control_accuracy" in check:
        return _judge_rows(check)
    raise ValueError(f"not a known check: {sorted(check)}")


def method_health_report(*checks: dict) -> tuple[pd.DataFrame, go.Figure]:
    """The checks as one table (informative rows have no threshold) and a figure of them."""
    table = pd.DataFrame([row for check in checks for row in _rows(check)], columns=COLUMNS)
    for row in table.loc[table["passed"].eq(False)].itertuples():
        logger.warning(
            "METHOD HEALTH CHECK FAILED: %s: %s = %.3f (needs %s)", row.model, row.check, row.value, row.threshold
        )
    colours = table["passed"].map({True: "seagreen", False: "crimson"}).fillna("grey")
    figure = go.Figure(
        go.Bar(
            y=[f"{m}: {c}" for m, c in zip(table["model"], table["check"])],
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
