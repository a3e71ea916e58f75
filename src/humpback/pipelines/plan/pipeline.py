"""The plan pipeline: ``kedro run --pipeline=plan --env X`` sizes a run before it starts."""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.plan.nodes import check_plan, plan_run, read_model_shape, render_plan


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                read_model_shape,
                ["params:base_model", "params:plan.model_shape"],
                "plan_base_shape",
                name="read_base_shape",
            ),
            Node(
                read_model_shape,
                ["params:aligned_model", "params:plan.aligned_model_shape"],
                "plan_aligned_shape",
                name="read_aligned_shape",
            ),
            Node(
                plan_run,
                inputs={
                    "base_shape": "plan_base_shape",
                    "aligned_shape": "plan_aligned_shape",
                    "backward_model": "params:backward_model",
                    "seed_model": "params:seed_model",
                    "m1": "params:m1",
                    "ingestion": "params:ingestion",
                    "augmentation": "params:augmentation",
                    "rewriting": "params:rewriting",
                    "curation": "params:curation",
                    "evaluation": "params:evaluation",
                    "llm": "params:llm",
                    "generation": "params:generation",
                    "plan": "params:plan",
                },
                outputs="plan",
                name="plan_run",
            ),
            Node(render_plan, ["plan", "params:plan"], "plan_markdown", name="render_plan"),
            Node(check_plan, ["plan", "plan_markdown"], "plan_check", name="check_plan"),
        ]
    )
