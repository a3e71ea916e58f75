from humpback.pipelines.curation.pipeline import create_pipeline, curation_pipeline, rewriting_variant_pipeline

__all__ = ["create_pipeline", "curation_pipeline", "rewriting_variant_pipeline"]
