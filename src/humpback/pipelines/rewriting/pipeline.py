"""Rewriting before curation (``self_before_curation``); the ``after_curation`` node lives in the
curation pipeline, where it sees the kept pairs of each iteration."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.rewriting.nodes import rewrite_candidates


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                rewrite_candidates,
                inputs=["candidates", "seed_model.model", "params:llm", "params:rewriting", "params:generation"],
                outputs="rated_candidates",
                name="rewrite_candidates",
            )
        ]
    )
