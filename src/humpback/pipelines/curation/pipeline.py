"""Curation for one iteration: rate → select → training pairs → reports.

The iteration's own model (``rater_model``: M0, then M1) rates the candidates; the kept pairs go
through rewriting's after-curation node (``selected_pairs`` → ``curated_pairs``) before they become
training pairs. The registry composes both under each iteration's namespace; ``params:training`` is the training
block of the model the kept pairs will train (scorers rate each answer as it cuts it).
"""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.curation.nodes import (
    base_rater_controls,
    build_training_pairs,
    curator_controls,
    describe_curation,
    score_candidates,
    scorer_controls_table,
    select_pairs,
    select_random_pairs,
    summarise_curator_controls,
)
from humpback.pipelines.curation.reports import curation_funnel, score_examples, score_histogram

#: what the curator's controls are built from, and the settings they are rated with
CONTROL_DATA = ["selection.heldout_pairs", "selection.ranked_pairs", "web_documents", "rated_candidates", "hand_labels"]
CONTROL_PARAMETERS = ["params:llm", "params:curation", "params:generation", "params:training"]


def _training_pairs_node() -> Node:
    return Node(build_training_pairs, ["seed_pairs", "curated_pairs"], "training_pairs", name="build_training_pairs")


def _provenance_node() -> Node:
    """How the training pairs were chosen (``selection_summary``), for the trained model's card."""
    return Node(
        describe_curation,
        inputs=[
            "selection_summary",
            "curator_check",
            "web_documents",
            "candidates",
            "rater_model",
            "params:curation",
            "params:rewriting",
        ],
        outputs="curation_provenance",
        name="describe_curation",
    )


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                score_candidates,
                inputs=[
                    "rated_candidates",
                    "rater_model",
                    "base_model",
                    "params:llm",
                    "params:curation",
                    "params:generation",
                    "params:training",
                ],
                outputs="scored_candidates",
                name="score_candidates",
            ),
            Node(
                select_pairs,
                ["scored_candidates", "curator_check", "params:curation"],
                ["selected_pairs", "selection_summary"],
                name="select_pairs",
            ),
            _training_pairs_node(),
            Node(
                curator_controls,
                inputs=[*CONTROL_DATA, "rater_model", "base_model", *CONTROL_PARAMETERS],
                outputs="curator_controls",
                name="curator_controls",
            ),
            Node(
                base_rater_controls,
                inputs=[*CONTROL_DATA, "base_model", *CONTROL_PARAMETERS],
                outputs="curator_controls_base",
                name="base_rater_controls",
            ),
            Node(
                summarise_curator_controls,
                ["curator_controls", "curator_controls_base", "rater_model", "params:curation"],
                "curator_check",
                name="summarise_curator_controls",
            ),
            Node(
                scorer_controls_table,
                "curator_check",
                "curator_controls_by_scorer",
                name="report_curator_controls_by_scorer",
            ),
            _provenance_node(),
            Node(
                curation_funnel,
                inputs=[
                    "web_documents",
                    "candidates",
                    "rated_candidates",
                    "scored_candidates",
                    "curated_pairs",
                    "selection_summary",
                ],
                outputs=["curation_funnel", "curation_funnel_plot"],
                name="report_curation_funnel",
            ),
            Node(score_histogram, "scored_candidates", "score_histogram", name="report_score_histogram"),
            Node(
                score_examples,
                ["scored_candidates", "params:curation.examples_per_score"],
                "score_examples",
                name="report_score_examples",
            ),
        ]
    )


def random_selection_pipeline(**kwargs) -> Pipeline:
    """Curation's control: as many of the rated candidates as curation kept (``curated_selection``),
    drawn at random → ``selected_pairs`` (the registry passes them through rewriting's after-curation
    node, as the curated ones are) → training pairs and their provenance."""
    return Pipeline(
        [
            Node(
                select_random_pairs,
                ["scored_candidates", "curated_selection", "params:curation"],
                ["selected_pairs", "selection_summary"],
                name="select_random_pairs",
            ),
            _training_pairs_node(),
            _provenance_node(),
        ]
    )
