from humpback.pipelines.curation.pipeline import create_pipeline

__all__ = ["create_pipeline"]
