"""Augmentation: M_yx writes an instruction for every web document → candidate pairs."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.augmentation.nodes import generate_instructions


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                generate_instructions,
                inputs=[
                    "web_documents",
                    "backward_model.model",
                    "params:llm",
                    "params:augmentation",
                    "params:generation",
                ],
                outputs="candidates",
                name="generate_instructions",
            )
        ]
    )
