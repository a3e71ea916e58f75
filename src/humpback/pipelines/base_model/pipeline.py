"""Base and aligned models: each configured model saved once as a safetensors checkpoint in 06_models."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.base_model.nodes import materialise_aligned_model, materialise_base_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                materialise_base_model, inputs="params:base_model", outputs="base_model", name="materialise_base_model"
            ),
            Node(
                materialise_aligned_model,
                inputs="params:aligned_model",
                outputs="aligned_model",
                name="materialise_aligned_model",
            ),
        ]
    )
