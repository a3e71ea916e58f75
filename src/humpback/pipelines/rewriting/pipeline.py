"""Rewriting before curation (``self_before_curation``), one node per iteration; the
``after_curation`` node lives in the curation pipeline, where it sees the kept pairs of each iteration."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.rewriting.nodes import rewrite_candidates


def create_pipeline(**kwargs) -> Pipeline:
    """Iteration 1's rewriting: M0 is both the seed model and the iteration's own model."""
    return rewriting_pipeline(own_model="seed_model.model")


def rewriting_pipeline(own_model: str, namespace: str | None = None) -> Pipeline:
    """Candidates → the pairs to rate (``[namespace.]rated_candidates``), rewritten in
    ``self_before_curation`` by ``own_model`` (the iteration's model: M0, then M1)."""
    node = Node(
        rewrite_candidates,
        inputs=["candidates", "seed_model.model", "own_model", "params:llm", "params:rewriting", "params:generation"],
        outputs="rated_candidates",
        name="rewrite_candidates",
    )
    return Pipeline(
        [node],
        namespace=namespace,
        inputs={"candidates": "candidates", "seed_model.model": "seed_model.model", "own_model": own_model},
        parameters={name: name for name in ("llm", "rewriting", "generation")},
    )
