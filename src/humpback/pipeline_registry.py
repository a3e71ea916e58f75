"""Project pipelines: each stage of the method by name, and the iterations built from them."""

from __future__ import annotations

from kedro.pipeline import Pipeline

from humpback.pipelines import augmentation, base_model, ingestion, rewriting
from humpback.pipelines.curation import curation_pipeline, rewriting_variant_pipeline
from humpback.pipelines.evaluation import evaluation_pipeline
from humpback.pipelines.training import trained_model_pipeline


#: rewriting modes trained as M1 variants beside the run's own M1 (rewriting as configured)
VARIANT_MODES = ("self_before_curation", "after_curation")


def register_pipelines() -> dict[str, Pipeline]:
    stages = {
        "ingestion": ingestion.create_pipeline(),
        "base_model": base_model.create_pipeline(),
        "backward_model": trained_model_pipeline("backward_model", training_pairs="seed_pairs"),
        "augmentation": augmentation.create_pipeline(),
        "seed_model": trained_model_pipeline("seed_model", training_pairs="seed_pairs"),
        "rewriting": rewriting.create_pipeline(),
        "curation": curation_pipeline("iteration1", rater_model="seed_model.model", rated_candidates="rated_candidates"),
        "m1": trained_model_pipeline("m1", "iteration1.training_pairs", "iteration1.curation_provenance"),
    }
    iteration1 = sum(stages.values(), Pipeline([]))
    # M1 rewrites (when rewriting is on, `rewriting.iteration2`) and rescores the candidates of
    # iteration 1 (nothing of iteration 1 is recomputed) → M2.
    iteration2 = (
        rewriting.rewriting_pipeline(own_model="m1.model", namespace="iteration2")
        + curation_pipeline("iteration2", rater_model="m1.model", rated_candidates="iteration2.rated_candidates")
        + trained_model_pipeline("m2", "iteration2.training_pairs", "iteration2.curation_provenance")
    )
    variants = {mode: rewriting_variant_pipeline(mode) for mode in VARIANT_MODES}
    evaluation = evaluation_pipeline(
        "evaluation",
        evaluate={"base": "base_model", "m0": "seed_model.model", "m1": "m1.model"},
        compare=[("m1", "m0"), ("m1", "base")],
        table=["base", "m0", "m1"],
        cards={"m0": "seed_model.model_card", "m1": "m1.model_card"},
    )
    evaluation_m2 = evaluation_pipeline(
        "evaluation_m2",
        evaluate={"m2": "m2.model"},
        compare=[("m2", "m1"), ("m2", "base")],
        table=["base", "m0", "m1", "m2"],
        cards={"m2": "m2.model_card"},
        earlier_comparisons=(("m1", "m0"), ("m1", "base")),
    )
    variant_labels = {f"m1_{mode}": f"m1_{mode}.model" for mode in VARIANT_MODES}
    evaluation_variants = evaluation_pipeline(
        "evaluation_variants",
        evaluate=variant_labels,
        compare=[(label, "m0") for label in variant_labels],
        table=["m0", "m1", *variant_labels],
        cards={label: f"{label}.model_card" for label in variant_labels},
        earlier_comparisons=(("m1", "m0"),),
    )
    return {
        **stages,
        "iteration1": iteration1,
        "iteration2": iteration2,
        "rewriting_variants": sum(variants.values(), Pipeline([])),
        "evaluation": evaluation,
        "evaluation_m2": evaluation_m2,
        "evaluation_variants": evaluation_variants,
        "__default__": iteration1,
    }
