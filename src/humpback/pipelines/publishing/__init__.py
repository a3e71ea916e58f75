"""Hub-ready exports of the run's datasets (Parquet + dataset card)."""

from humpback.pipelines.publishing.pipeline import dataset_exports_pipeline

__all__ = ["dataset_exports_pipeline"]
