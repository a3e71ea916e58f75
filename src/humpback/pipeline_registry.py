"""Project pipelines: each stage of the method by name, and the iterations built from them.

Stages never import one another; this module composes them (Kedro namespaces give every iteration
and variant its own datasets, and the mappings below say which datasets they share).
"""

from __future__ import annotations

import warnings

from kedro.pipeline import Node, Pipeline

from humpback.pipelines import augmentation, curation, ingestion, rewriting
from humpback.pipelines.base_model import pipeline as base_model
from humpback.pipelines.curation.nodes import score_with_every_scorer
from humpback.pipelines.evaluation import evaluation_pipeline
from humpback.pipelines.evaluation.nodes import generate_responses, score_preferences, score_references
from humpback.pipelines.evaluation.pipeline import style_detector_node
from humpback.pipelines.method_health import method_health_pipeline
from humpback.pipelines.plan import pipeline as plan
from humpback.pipelines.publishing import dataset_exports_pipeline, publish_pipeline
from humpback.pipelines.study import pipeline as study
from humpback.pipelines.training.pipeline import learning_rate_sweep_pipeline, trained_model_pipeline

# Kedro 1.x warns for a dotted dataset name read outside its node's own namespace. Here every dotted
# name *is* a namespace's output (`m1.model`, `iteration1.curated_pairs`) handed on to a later stage:
# that is what namespaces are for, and Kedro has no way to declare it (kedro-org/kedro#5021, open).
# The warning is silenced for these names only; `tests/test_run.py` checks no command prints it.
warnings.filterwarnings("ignore", message=r"One or more dataset names contain '\.' characters", category=UserWarning)

#: rewriting modes trained as M1 variants beside the run's own M1 (rewriting as configured)
VARIANT_MODES = ("self_before_curation", "after_curation")
#: datasets every iteration reads from the run
SHARED_INPUTS = (
    "candidates",
    "web_documents",
    "seed_pairs",
    "seed_model.model",
    "aligned_model",
    "heldout_pairs",
    "selection.heldout_pairs",
    "selection.ranked_pairs",
    "base_model",
    "hand_labels",
)
#: parameters every iteration shares (rewriting is swapped for the variants)
SHARED_PARAMETERS = ("llm", "curation", "curation.examples_per_score", "rewriting", "generation")


def in_iteration(
    namespace: str,
    stage: Pipeline,
    own_model: str,
    rewriting_parameters: str = "rewriting",
    training: str = "m1.training",
    **shared: str,
) -> Pipeline:
    """``stage`` under ``namespace``: it reads the run's shared datasets, and the iteration's own
    model (M0, then M1) as ``own_model`` and ``rater_model``, and as ``params:training`` the training
    block of the model its pairs train; ``shared`` names more datasets the iteration shares with the
    run (in either direction), e.g. ``rated_candidates="rated_candidates"``."""
    inputs = {name: name for name in SHARED_INPUTS} | {"own_model": own_model, "rater_model": own_model} | shared
    parameters = {name: name for name in SHARED_PARAMETERS} | {"rewriting": rewriting_parameters, "training": training}
    used = {name.removeprefix("params:") for name in stage.inputs() if name.startswith("params:")}
    return Pipeline(
        stage,
        namespace=namespace,
        inputs={name: target for name, target in inputs.items() if name in stage.inputs()},
        outputs={name: target for name, target in shared.items() if name in stage.outputs()} or None,
        parameters={name: target for name, target in parameters.items() if name in used},
    )


def curated_iteration(
    namespace: str,
    own_model: str,
    rewriting_parameters: str = "rewriting",
    training: str = "m1.training",
    **shared: str,
) -> dict[str, Pipeline]:
    """One iteration's data work, in the order it runs: rewriting before curation, curation (rate →
    select), rewriting of the kept pairs → training pairs and reports."""
    return {
        "rewriting": in_iteration(
            namespace, rewriting.before_curation_pipeline(), own_model, rewriting_parameters, training, **shared
        ),
        "curation": in_iteration(
            namespace,
            curation.create_pipeline() + rewriting.after_curation_pipeline(),
            own_model,
            rewriting_parameters,
            training,
            **shared,
        ),
    }


def rewriting_variant(mode: str) -> Pipeline:
    """M1 trained on the same candidates with rewriting ``mode`` (``rewriting_variants.<mode>``),
    under namespace ``m1_<mode>``; backward model, candidates and M0 are the run's."""
    namespace = f"m1_{mode}"
    variant = curated_iteration(namespace, "seed_model.model", f"rewriting_variants.{mode}")
    return sum(variant.values(), Pipeline([])) + _trained_as_m1(namespace)


def _trained_as_m1(namespace: str) -> Pipeline:
    """The model of a variant under ``namespace``, trained on its own pairs with M1's training block."""
    return trained_model_pipeline(
        namespace, f"{namespace}.training_pairs", f"{namespace}.curation_provenance", training="m1.training"
    )


def random_selection_control(iteration: str, rater: str, namespace: str) -> Pipeline:
    """A second M1 (``namespace``) trained on as many candidates as ``iteration``'s curation kept,
    drawn at random from the pairs it rated: same seed pairs, same training block, and the same
    after-curation rewriting. Evaluation sets it beside M1: did curation beat chance?"""
    selection = in_iteration(
        namespace,
        curation.random_selection_pipeline() + rewriting.after_curation_pipeline(),
        rater,
        scored_candidates=f"{iteration}.scored_candidates",
        curated_selection=f"{iteration}.selection_summary",
        curator_check=f"{iteration}.curator_check",
    )
    return selection + _trained_as_m1(namespace)


def study_pipeline() -> Pipeline:
    """The curated-vs-random study on iteration 1's candidates and M0: every candidate scored by
    every forward-pass scorer, one model per arm (M1's training block), each arm's reference NLL and
    preferences, and the table (``study.results``, ``study.summary``)."""
    pool = Pipeline(
        [
            Node(
                score_with_every_scorer,
                [
                    "rated_candidates",
                    "seed_model.model",
                    "base_model",
                    "params:llm",
                    "params:curation",
                    "params:generation",
                    "params:m1.training",
                ],
                "study.pool",
                name="study_score_pool",
            )
        ]
    )
    return pool + study.create_pipeline() + _study_arms(study.ARMS)


def _study_arms(arms: tuple[str, ...], responses: bool = False) -> Pipeline:
    """Each arm's model (M1's training block on the arm's pairs alone) and its judge-free
    evaluation: reference NLL, preferences and, with ``responses``, greedy answers."""
    pipeline = Pipeline([])
    for arm in arms:
        model = study.arm_model(arm)
        pipeline += trained_model_pipeline(model, f"study.{arm}.training_pairs", training="m1.training")
        measures = [
            (score_references, ["report.heldout_pairs"], "reference_nll"),
            (score_preferences, ["report.ranked_pairs"], "preferences"),
        ]
        pipeline += Pipeline(
            [
                Node(
                    function,
                    [evaluated, f"{model}.model", "params:llm", "params:generation"],
                    f"evaluation.{model}.{output}",
                    name=f"{model}_{function.__name__}",
                )
                for function, (evaluated,), output in measures
            ]
        )
        if responses:
            pipeline += Pipeline(
                [
                    Node(
                        generate_responses,
                        [
                            "report.heldout_pairs",
                            f"{model}.model",
                            "params:llm",
                            "params:evaluation",
                            "params:generation",
                        ],
                        f"evaluation.{model}.responses",
                        name=f"{model}_generate_responses",
                    )
                ]
            )
    return pipeline


def study_sensitivity_pipeline() -> Pipeline:
    """Before the study: can its measures see the quality of the pairs at all? Arms on hand-labelled
    good pairs and on two length-matched draws of label-1 pairs, each trained as a study arm and
    evaluated on NLL, preferences and the style of its answers (``study.sensitivity_results``)."""
    detector = Pipeline([style_detector_node()])
    return detector + _study_arms(study.SENSITIVITY_ARMS, responses=True) + study.sensitivity_pipeline()


def register_pipelines() -> dict[str, Pipeline]:
    # iteration 1 keeps its rated candidates un-namespaced: the dataset the README and notebook show
    iteration1_data = curated_iteration("iteration1", "seed_model.model", rated_candidates="rated_candidates")
    stages = {
        "ingestion": ingestion.create_pipeline(),  # seed pairs, the held-out pairs, web documents
        "base_model": base_model.create_pipeline(),
        "backward_model": trained_model_pipeline("backward_model", training_pairs="seed_pairs"),
        "augmentation": augmentation.create_pipeline(),
        "seed_model": trained_model_pipeline("seed_model", training_pairs="seed_pairs"),
        "rewriting": iteration1_data["rewriting"],
        "curation": iteration1_data["curation"],
        "m1": trained_model_pipeline("m1", "iteration1.training_pairs", "iteration1.curation_provenance"),
    }
    # curation's control, a second M1 on as many random pairs, is evaluation's question (did curation
    # beat chance?), so evaluation trains it: iteration1 is the method's steps 1-8
    m1_random = random_selection_control("iteration1", "seed_model.model", "m1_random")
    iteration1 = (
        sum(stages.values(), Pipeline([]))
        + method_health_pipeline("iteration1", ["augmentation.backward_check", "iteration1.curator_check"])
        + dataset_exports_pipeline("iteration1", "m1", candidates=True)
    )
    # M1 rewrites (when rewriting is on, `rewriting.iteration2`) and rescores the candidates of
    # iteration 1 (nothing of iteration 1 is recomputed) → M2.
    iteration2 = (
        sum(curated_iteration("iteration2", "m1.model", training="m2.training").values(), Pipeline([]))
        + trained_model_pipeline("m2", "iteration2.training_pairs", "iteration2.curation_provenance")
        + method_health_pipeline("iteration2", ["iteration2.curator_check"])
        + dataset_exports_pipeline("iteration2", "m2", candidates=False)
    )
    evaluation = (
        m1_random
        + evaluation_pipeline(
            "evaluation",
            evaluate={"base": "base_model", "m0": "seed_model.model", "m1": "m1.model", "m1_random": "m1_random.model"},
            compare=[("m1", "m0"), ("m1", "base"), ("m1", "m1_random")],
            table=["base", "m0", "m1", "m1_random"],
            cards={"m0": "seed_model.model_card", "m1": "m1.model_card", "m1_random": "m1_random.model_card"},
        )
        + method_health_pipeline("evaluation", ["evaluation.judge_check", "evaluation.style_check"])
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
        "m1_random": m1_random,
        "iteration1": iteration1,
        "iteration2": iteration2,
        "rewriting_variants": sum((rewriting_variant(mode) for mode in VARIANT_MODES), Pipeline([])),
        "evaluation": evaluation,
        "evaluation_m2": evaluation_m2,
        "evaluation_variants": evaluation_variants,
        "publish": publish_pipeline(),
        "plan": plan.create_pipeline(),
        "study": study_pipeline(),
        "study_sensitivity": study_sensitivity_pipeline(),
        "learning_rate_sweep": learning_rate_sweep_pipeline(),
        "__default__": iteration1,
    }
