"""Ingestion: oasst1 → seed pairs, the held-out pairs and the ranked-reply pairs no model trains on;
c4 → candidate web documents; one funnel report."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.ingestion.nodes import (
    build_heldout_pairs,
    build_ranked_pairs,
    build_seed_pairs,
    build_web_documents,
    combine_funnels,
    split_prompt_parts,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                build_seed_pairs,
                inputs=["oasst1_messages", "params:ingestion.seed"],
                outputs=["seed_pairs", "seed_funnel", "seed_reserve_pairs"],
                name="build_seed_pairs",
            ),
            Node(
                build_heldout_pairs,
                inputs=[
                    "oasst1_heldout_messages",
                    "seed_pairs",
                    "seed_reserve_pairs",
                    "params:ingestion.seed",
                    "params:ingestion.heldout",
                    "params:ingestion.parts",
                ],
                outputs="heldout_pairs",
                name="build_heldout_pairs",
            ),
            Node(
                build_ranked_pairs,
                inputs=[
                    "oasst1_heldout_messages",
                    "oasst1_extra_trees",
                    "seed_pairs",
                    "seed_reserve_pairs",
                    "params:ingestion.seed",
                    "params:ingestion.ranked",
                    "params:ingestion.parts",
                ],
                outputs="ranked_pairs",
                name="build_ranked_pairs",
            ),
            Node(
                split_prompt_parts,
                inputs=["heldout_pairs", "ranked_pairs"],
                outputs=[
                    "selection.heldout_pairs",
                    "report.heldout_pairs",
                    "selection.ranked_pairs",
                    "report.ranked_pairs",
                ],
                name="split_prompt_parts",
            ),
            Node(
                build_web_documents,
                inputs=["c4_documents", "params:ingestion.web"],
                outputs=["web_documents", "web_funnel"],
                name="build_web_documents",
            ),
            Node(
                combine_funnels,
                inputs=["seed_funnel", "web_funnel"],
                outputs="ingestion_funnel",
                name="combine_ingestion_funnels",
            ),
        ]
    )
