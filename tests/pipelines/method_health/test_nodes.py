"""The method-health table lays out each stage's check with its threshold and verdict."""

import math

from humpback.health import criterion, information, verdict
from humpback.pipelines.method_health.nodes import method_health_report

# checks as the stages make them (their own tests show how each verdict is decided)
BACKWARD = verdict(
    [
        criterion(
            "backward model",
            "held-out true-instruction NLL − base model's (nats/token)",
            -0.187,
            low=-0.446,
            high=-0.054,
            threshold="interval < 0",
            passed=-0.054 < 0,
            failure="NLL",
        ),
        criterion(
            "backward model",
            "request-like share of usable instructions",
            0.962,
            threshold="≥ 0.8",
            passed=True,
            failure="request-like",
        ),
        criterion("backward model", "echo share of outputs", 0.052, threshold="≤ 0.2", passed=True, failure="echo"),
    ]
)
CURATOR = verdict(
    [
        criterion(
            "curator (seed)",
            "ROC AUC human vs mismatched pairs",
            0.49,
            low=0.34,
            high=0.63,
            threshold="≥ 0.7",
            passed=False,
            failure="AUC human vs mismatched 0.49 < 0.70",
        ),
        criterion(
            "curator (seed)",
            "ROC AUC human vs web pairs",
            0.75,
            low=0.6,
            high=0.9,
            threshold="≥ 0.7",
            passed=True,
            failure="AUC human vs web",
        ),
        information("curator (seed)", "spread of its expected_score (sd)", 0.25),
        information("curator (seed)", "control pairs rated", 1.0),
    ]
)
JUDGE = verdict(
    [
        criterion(
            "judge (smollm2)",
            "picks the human answer over another prompt's",
            0.53,
            low=0.41,
            high=0.65,
            threshold="≥ 0.75",
            passed=False,
            failure="control accuracy 0.53 < 0.75",
        ),
        criterion(
            "judge (smollm2)",
            "same verdict in both orders",
            0.06,
            threshold="≥ 0.6",
            passed=False,
            failure="order consistency 0.06 < 0.60",
        ),
        information("judge (smollm2)", "first-position rate (0.5: no position bias)", 0.94),
    ]
)


def test_every_check_is_a_row_with_its_threshold_and_verdict(caplog):
    table, figure = method_health_report(BACKWARD, CURATOR, JUDGE)
    verdicts = dict(zip(table["model"] + ": " + table["check"], table["passed"], strict=True))
    assert verdicts == {
        "backward model: held-out true-instruction NLL − base model's (nats/token)": True,
        "backward model: request-like share of usable instructions": True,
        "backward model: echo share of outputs": True,
        "curator (seed): ROC AUC human vs mismatched pairs": False,
        "curator (seed): ROC AUC human vs web pairs": True,
        "curator (seed): spread of its expected_score (sd)": None,
        "curator (seed): control pairs rated": None,
        "judge (smollm2): picks the human answer over another prompt's": False,
        "judge (smollm2): same verdict in both orders": False,
        "judge (smollm2): first-position rate (0.5: no position bias)": None,
    }
    first = table.iloc[0]
    assert (first["value"], first["ci_low"], first["ci_high"], first["threshold"]) == (
        -0.187,
        -0.446,
        -0.054,
        "interval < 0",
    )
    assert math.isnan(table.iloc[1]["ci_low"])  # a share with no interval
    assert caplog.text.count("METHOD HEALTH CHECK FAILED") == 3  # one loud line per failing check
    assert list(figure.data[0].marker.color).count("crimson") == 3
