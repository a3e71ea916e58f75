"""Exports of an iteration's datasets with their cards (``export.<name>.data`` / ``.card``)."""

from kedro.pipeline import Node, Pipeline

from humpback.engine.wiring import with_labels
from humpback.pipelines.publishing.hub import publish_to_hub
from humpback.pipelines.publishing.nodes import (
    configuration_snapshot,
    export_candidates,
    export_curated_pairs,
    export_sft_examples,
    export_training_pairs,
)


def dataset_exports_pipeline(iteration: str, trained_model: str, candidates: bool) -> Pipeline:
    """Curated and training pairs of ``iteration``, the ``trained_model``'s examples in TRL's format
    (and, once per run, the candidates) as exports."""
    nodes = [
        Node(
            with_labels(export_curated_pairs, f"{iteration}_curated_pairs"),
            [
                f"{iteration}.curated_pairs",
                f"{iteration}.curation_funnel",
                f"{iteration}.scored_candidates",
                f"{iteration}.curation_provenance",
                "backward_model.model",
            ],
            [f"export.{iteration}_curated_pairs.data", f"export.{iteration}_curated_pairs.card"],
            name=f"export_{iteration}_curated_pairs",
        ),
        Node(
            with_labels(export_training_pairs, f"{iteration}_training_pairs"),
            [f"{iteration}.training_pairs", f"{iteration}.curation_provenance"],
            [f"export.{iteration}_training_pairs.data", f"export.{iteration}_training_pairs.card"],
            name=f"export_{iteration}_training_pairs",
        ),
        Node(
            with_labels(export_sft_examples, f"{iteration}_sft_examples"),
            [f"{trained_model}.sft_examples", f"{iteration}.curation_provenance"],
            [f"export.{iteration}_sft_examples.data", f"export.{iteration}_sft_examples.card"],
            name=f"export_{iteration}_sft_examples",
        ),
        Node(
            configuration_snapshot,
            "parameters",
            f"export.{iteration}_parameters",
            name=f"export_{iteration}_parameters",
        ),
    ]
    if candidates:
        nodes.append(
            Node(
                export_candidates,
                [
                    "candidates",
                    "ingestion_funnel",
                    "backward_model.model",
                    "params:augmentation",
                    "params:ingestion.web",
                ],
                ["export.candidates.data", "export.candidates.card"],
                name="export_candidates",
            )
        )
    return Pipeline(nodes)


def publish_pipeline() -> Pipeline:
    """Push the exports and models named in ``publish`` to the Hub; a receipt of what went where."""
    return Pipeline([Node(publish_to_hub, "params:publish", "publish_receipt", name="publish_to_hub")])
