from humpback.pipelines.training.pipeline import create_pipeline, trained_model_pipeline

__all__ = ["create_pipeline", "trained_model_pipeline"]
