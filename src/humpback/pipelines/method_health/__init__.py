"""Method health: every model-made judgement of a run checked against known answers, in one table."""

from humpback.pipelines.method_health.pipeline import method_health_pipeline

__all__ = ["method_health_pipeline"]
