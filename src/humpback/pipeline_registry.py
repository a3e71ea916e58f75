"""Project pipelines: each stage of the method by name, and the iterations built from them."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from humpback.pipelines import base_model, ingestion


def register_pipelines() -> dict[str, Pipeline]:
    ingestion_pipeline = ingestion.create_pipeline()
    base_model_pipeline = base_model.create_pipeline()
    iteration1 = ingestion_pipeline + base_model_pipeline
    return {
        "ingestion": ingestion_pipeline,
        "base_model": base_model_pipeline,
        "iteration1": iteration1,
        "__default__": iteration1,
    }
