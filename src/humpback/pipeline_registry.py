"""Project pipelines: each stage of the method by name, and the iterations built from them."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from humpback.pipelines import augmentation, base_model, ingestion, rewriting
from humpback.pipelines.curation import curation_pipeline
from humpback.pipelines.training import trained_model_pipeline


def register_pipelines() -> dict[str, Pipeline]:
    stages = {
        "ingestion": ingestion.create_pipeline(),
        "base_model": base_model.create_pipeline(),
        "backward_model": trained_model_pipeline("backward_model", training_pairs="seed_pairs"),
        "augmentation": augmentation.create_pipeline(),
        "seed_model": trained_model_pipeline("seed_model", training_pairs="seed_pairs"),
        "rewriting": rewriting.create_pipeline(),
        "curation": curation_pipeline("iteration1", rater_model="seed_model.model"),
        "m1": trained_model_pipeline("m1", training_pairs="iteration1.training_pairs"),
    }
    iteration1 = sum(stages.values(), Pipeline([]))
    # M1 rescores the candidates of iteration 1 (nothing of iteration 1 is recomputed) → M2.
    iteration2 = curation_pipeline("iteration2", rater_model="m1.model") + trained_model_pipeline(
        "m2", training_pairs="iteration2.training_pairs"
    )
    return {**stages, "iteration1": iteration1, "iteration2": iteration2, "__default__": iteration1}
