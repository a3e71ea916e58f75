"""Curation for one iteration: rate → select → (rewrite kept pairs) → training pairs → reports.

Instantiated as ``iteration1`` (rated by the seed model M0) and ``iteration2`` (rated by M1) with
Kedro namespaces; parameters are shared between the iterations. ``rewriting_variant_pipeline``
trains one M1 per rewriting mode from the same candidates, for the evaluation to compare.
"""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.curation.nodes import build_training_pairs, describe_curation, score_candidates, select_pairs
from humpback.pipelines.curation.reports import curation_funnel, score_examples, score_histogram
from humpback.pipelines.rewriting.nodes import rewrite_selected

SHARED_PARAMETERS = {"llm", "curation", "rewriting", "generation"}
SHARED_INPUTS = {"candidates", "web_documents", "seed_pairs", "seed_model.model", "aligned_model"}


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                score_candidates,
                inputs=["rated_candidates", "rater_model", "params:llm", "params:curation", "params:generation"],
                outputs="scored_candidates",
                name="score_candidates",
            ),
            Node(select_pairs, ["scored_candidates", "params:curation"], ["selected_pairs", "selection_summary"], name="select_pairs"),
            Node(
                rewrite_selected,
                inputs=["selected_pairs", "seed_model.model", "rater_model", "aligned_model", "params:llm", "params:rewriting",
                        "params:generation"],
                outputs="curated_pairs",
                name="rewrite_selected",
            ),
            Node(build_training_pairs, ["seed_pairs", "curated_pairs"], "training_pairs", name="build_training_pairs"),
            Node(
                describe_curation,
                inputs=["selection_summary", "web_documents", "candidates", "rater_model", "params:curation", "params:rewriting"],
                outputs="curation_provenance",
                name="describe_curation",
            ),
            Node(
                curation_funnel,
                inputs=["web_documents", "candidates", "rated_candidates", "scored_candidates", "curated_pairs", "selection_summary"],
                outputs=["curation_funnel", "curation_funnel_plot"],
                name="report_curation_funnel",
            ),
            Node(score_histogram, "scored_candidates", "score_histogram", name="report_score_histogram"),
            Node(score_examples, ["scored_candidates", "params:curation.examples_per_score"], "score_examples", name="report_score_examples"),
        ]
    )


def curation_pipeline(iteration: str, rater_model: str, rated_candidates: str) -> Pipeline:
    """Curation of ``rated_candidates`` under namespace ``iteration``, rated by ``rater_model``,
    the iteration's own model (it also rewrites in the ``self`` modes)."""
    return Pipeline(
        create_pipeline(),
        namespace=iteration,
        inputs={**{name: name for name in SHARED_INPUTS}, "rater_model": rater_model, "rated_candidates": rated_candidates},
        parameters={name: name for name in SHARED_PARAMETERS} | {"curation.examples_per_score": "curation.examples_per_score"},
    )


def rewriting_variant_pipeline(mode: str) -> Pipeline:
    """M1 trained on the same candidates with rewriting ``mode``, under namespace ``m1_<mode>``.

    Rewriting (before curation), curation and training run again with the settings of
    ``rewriting_variants.<mode>``; backward model, candidates and seed model are shared. The
    evaluation pipeline compares the variants on the same held-out prompts.
    """
    from humpback.pipelines import rewriting, training

    shared = {"candidates", "web_documents", "seed_pairs", "seed_model.model", "base_model", "aligned_model"}
    return Pipeline(
        rewriting.create_pipeline() + create_pipeline() + training.create_pipeline(curated=True),
        namespace=f"m1_{mode}",
        inputs={**{name: name for name in shared}, "rater_model": "seed_model.model"},
        parameters={name: name for name in SHARED_PARAMETERS - {"rewriting"}}
        | {"rewriting": f"rewriting_variants.{mode}", "training": "m1.training",
           "curation.examples_per_score": "curation.examples_per_score"},
    )
