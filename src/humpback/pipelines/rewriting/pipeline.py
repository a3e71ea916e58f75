"""Rewriting, on either side of curation: before it (``self_before_curation``: every candidate) and
after it (``after_curation``: the kept pairs). Each node always runs and passes the rows through
unchanged when its mode is not the configured one, so an iteration has one shape whatever the mode;
the registry places them around each iteration's curation."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.rewriting.nodes import rewrite_candidates, rewrite_selected


def before_curation_pipeline(**kwargs) -> Pipeline:
    """``candidates`` → ``rated_candidates``; ``own_model`` (M0, then M1) rewrites in the ``self`` mode."""
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
            )
        ]
    )


def after_curation_pipeline(**kwargs) -> Pipeline:
    """``selected_pairs`` → ``curated_pairs``; the aligned model, or ``own_model``, rewrites."""
    return Pipeline(
        [
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
            )
        ]
    )
