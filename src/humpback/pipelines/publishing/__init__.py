"""Hub-ready exports of the run's datasets (Parquet + dataset card), and pushing them to the Hub."""

from humpback.pipelines.publishing.pipeline import dataset_exports_pipeline, publish_pipeline

__all__ = ["dataset_exports_pipeline", "publish_pipeline"]
