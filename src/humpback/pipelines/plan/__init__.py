"""Plan: rows, batches, memory per device and time of every model stage, before a long run."""

from humpback.pipelines.plan.pipeline import create_pipeline

__all__ = ["create_pipeline"]
