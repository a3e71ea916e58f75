"""Method-health checks as the stages make them (their own tests show how each verdict is decided):
the report's and the cards' tests lay them out."""

from humpback.reports.health import criterion, information, verdict

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
