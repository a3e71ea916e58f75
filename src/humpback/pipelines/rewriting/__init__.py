from humpback.pipelines.rewriting.pipeline import after_curation_pipeline, before_curation_pipeline

__all__ = ["after_curation_pipeline", "before_curation_pipeline"]
