from humpback.pipelines.rewriting.pipeline import create_pipeline, rewriting_pipeline

__all__ = ["create_pipeline", "rewriting_pipeline"]
