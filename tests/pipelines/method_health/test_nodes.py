"""The method-health table lays out each stage's check with its threshold and verdict."""

import math

from humpback.pipelines.method_health.nodes import method_health_report
from tests.health_checks import BACKWARD, CURATOR, JUDGE


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
