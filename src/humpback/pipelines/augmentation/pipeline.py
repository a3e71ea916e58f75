"""Augmentation: M_yx writes an instruction for every web document → candidate pairs; its controls
check that it does the backward model's job (held-out true instructions told by their answers,
request-likeness, echoes)."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.augmentation.nodes import (
    backward_model_card,
    base_model_instruction_nll,
    generate_instructions,
    instruction_nll,
    instruction_nll_after_other_answers,
    summarise_backward_controls,
)


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
            ),
            Node(
                instruction_nll,
                ["selection.heldout_pairs", "backward_model.model", "params:llm", "params:generation"],
                "augmentation.backward_model_instruction_nll",
                name="backward_model_instruction_nll",
            ),
            Node(
                instruction_nll_after_other_answers,
                ["selection.heldout_pairs", "backward_model.model", "params:llm", "params:generation"],
                "augmentation.backward_model_other_answer_instruction_nll",
                name="backward_model_other_answer_instruction_nll",
            ),
            Node(
                base_model_instruction_nll,
                ["selection.heldout_pairs", "base_model", "params:llm", "params:generation", "params:augmentation"],
                ["augmentation.base_model_instruction_nll", "augmentation.base_model_other_answer_instruction_nll"],
                name="base_model_instruction_nll",
            ),
            Node(
                summarise_backward_controls,
                [
                    "augmentation.backward_model_instruction_nll",
                    "augmentation.backward_model_other_answer_instruction_nll",
                    "augmentation.base_model_instruction_nll",
                    "augmentation.base_model_other_answer_instruction_nll",
                    "candidates",
                    "params:augmentation",
                ],
                "augmentation.backward_check",
                name="summarise_backward_controls",
            ),
            Node(
                backward_model_card,
                ["backward_model.model", "augmentation.backward_check"],
                "backward_model.model_card",
                name="backward_model_card",
            ),
        ]
    )
