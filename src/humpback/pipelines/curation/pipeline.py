"""Curation for one iteration: rate → select → training pairs → reports.

The iteration's own model (``rater_model``: M0, then M1) rates the candidates; the kept pairs go
through rewriting's after-curation node (``selected_pairs`` → ``curated_pairs``) before they become
training pairs. The registry composes both under each iteration's namespace.
"""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.curation.nodes import (
    build_training_pairs,
    curator_controls,
    describe_curation,
    score_candidates,
    select_pairs,
    summarise_curator_controls,
)
from humpback.pipelines.curation.reports import curation_funnel, score_examples, score_histogram


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                score_candidates,
                inputs=["rated_candidates", "rater_model", "params:llm", "params:curation", "params:generation"],
                outputs="scored_candidates",
                name="score_candidates",
            ),
            Node(
                select_pairs,
                ["scored_candidates", "params:curation"],
                ["selected_pairs", "selection_summary"],
                name="select_pairs",
            ),
            Node(build_training_pairs, ["seed_pairs", "curated_pairs"], "training_pairs", name="build_training_pairs"),
            Node(
                curator_controls,
                inputs=[
                    "evaluation.heldout_pairs",
                    "web_documents",
                    "rater_model",
                    "params:llm",
                    "params:curation",
                    "params:generation",
                ],
                outputs="curator_controls",
                name="curator_controls",
            ),
            Node(
                summarise_curator_controls,
                ["curator_controls", "rater_model", "params:curation"],
                "curator_check",
                name="summarise_curator_controls",
            ),
            Node(
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
            ),
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
