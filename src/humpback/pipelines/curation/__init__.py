from humpback.pipelines.curation.pipeline import create_pipeline, random_selection_pipeline

__all__ = ["create_pipeline", "random_selection_pipeline"]
