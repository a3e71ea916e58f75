"""Project pipelines: each stage of the method by name, and the iterations built from them."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from humpback.pipelines import base_model, ingestion
from humpback.pipelines.training import trained_model_pipeline


def register_pipelines() -> dict[str, Pipeline]:
    ingestion_pipeline = ingestion.create_pipeline()
    base_model_pipeline = base_model.create_pipeline()
    backward_model = trained_model_pipeline("backward_model", training_pairs="seed_pairs")
    seed_model = trained_model_pipeline("seed_model", training_pairs="seed_pairs")
    iteration1 = ingestion_pipeline + base_model_pipeline + backward_model + seed_model
    return {
        "ingestion": ingestion_pipeline,
        "base_model": base_model_pipeline,
        "backward_model": backward_model,
        "seed_model": seed_model,
        "iteration1": iteration1,
        "__default__": iteration1,
    }
