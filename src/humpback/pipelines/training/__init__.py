from humpback.pipelines.training.pipeline import (
    SHARED_INPUTS,
    SHARED_PARAMETERS,
    create_pipeline,
    trained_model_pipeline,
)

__all__ = ["SHARED_INPUTS", "SHARED_PARAMETERS", "create_pipeline", "trained_model_pipeline"]
