from humpback.pipelines.rewriting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
