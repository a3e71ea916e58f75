"""The method-health report of an iteration or of the evaluation, from the checks its stages made."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.method_health.nodes import method_health_report


def method_health_pipeline(report: str, checks: list[str]) -> Pipeline:
    """``<report>.method_health`` (table) and ``<report>.method_health_plot`` from the ``checks`` datasets."""
    return Pipeline(
        [
            Node(
                method_health_report,
                checks,
                [f"{report}.method_health", f"{report}.method_health_plot"],
                name=f"{report}_method_health",
            )
        ]
    )
