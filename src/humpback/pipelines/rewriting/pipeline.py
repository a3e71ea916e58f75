"""Rewriting: before curation (``self_before_curation``: every candidate) and after it
(``after_curation``: the kept pairs). Both nodes always run and pass the rows through unchanged
when their mode is not the configured one, so an iteration has one shape whatever the mode; the
registry places them around each iteration's curation."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.rewriting.nodes import rewrite_candidates, rewrite_selected


def create_pipeline(**kwargs) -> Pipeline:
    """``own_model`` is the iteration's model (M0, then M1): it rewrites in the ``self`` modes."""
    return Pipeline(
        [
            Node(
                rewrite_candidates,
                inputs=[
                    "candidates",
                    "seed_model.model",
                    "own_model",
                    "params:llm",
                    "params:rewriting",
                    "params:generation",
                ],
                outputs="rated_candidates",
                name="rewrite_candidates",
            ),
            Node(
                rewrite_selected,
                inputs=[
                    "selected_pairs",
                    "seed_model.model",
                    "own_model",
                    "aligned_model",
                    "params:llm",
                    "params:rewriting",
                    "params:generation",
                ],
                outputs="curated_pairs",
                name="rewrite_selected",
            ),
        ]
    )
