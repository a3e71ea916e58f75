"""One training pipeline, instantiated per model with Kedro namespaces.

``backward_model`` (response → instruction on seed pairs), ``seed_model`` (M0, on seed pairs) and
``m1``/``m2`` (seed + curated pairs) are the same two nodes with their own parameters and datasets.
"""

from kedro.pipeline import Node, Pipeline

from humpback.pipelines.training.nodes import (
    learning_rate_sweep_results,
    prepare_sft_examples,
    sweep_examples,
    sweep_learning_rates,
    train_model,
)

#: what every trained model reads from the run, whatever its namespace
SHARED_INPUTS = {
    "base_model": "base_model",
    "heldout_pairs": "heldout_pairs",
    "seed_reserve_pairs": "seed_reserve_pairs",
}
SHARED_PARAMETERS = {"decontamination": "decontamination"}


def create_pipeline(curated: bool = False, **kwargs) -> Pipeline:
    """The two training nodes; ``curated`` models also record how their training pairs were curated."""
    return Pipeline(
        [
            Node(
                prepare_sft_examples,
                inputs=[
                    "training_pairs",
                    "base_model",
                    "params:training",
                    "heldout_pairs",
                    "params:decontamination",
                    "seed_reserve_pairs",
                ],
                outputs=["sft_examples", "sft_funnel"],
                name="prepare_sft_examples",
            ),
            Node(
                train_model,
                inputs=["sft_examples", "base_model", "params:training"] + (["curation_provenance"] if curated else []),
                outputs=["model", "loss_curve", "training_summary"],
                name="train_model",
            ),
        ]
    )


def trained_model_pipeline(
    namespace: str, training_pairs: str, curation_provenance: str | None = None, training: str | None = None
) -> Pipeline:
    """The training pipeline under ``namespace``, reading ``training_pairs``, the base model and the
    evaluation prompts (decontamination), and for models trained on curated pairs the curation's
    provenance; ``training`` names another model's training block (a variant trains as M1 does)."""
    inputs = {"training_pairs": training_pairs, **SHARED_INPUTS}
    if curation_provenance:
        inputs["curation_provenance"] = curation_provenance
    return Pipeline(
        create_pipeline(curated=bool(curation_provenance)),
        namespace=namespace,
        inputs=inputs,
        parameters=SHARED_PARAMETERS | ({"training": training} if training else {}),
    )


def learning_rate_sweep_pipeline() -> Pipeline:
    """The seed model trained at each rate of ``learning_rate_sweep`` and compared on held-out seed
    pairs (``learning_rate_sweep.results``, ``.summary``): the forward models' rate is chosen on
    seed pairs, never on the evaluation prompts."""
    block, sweep = "params:seed_model.training", "params:learning_rate_sweep"
    return Pipeline(
        [
            Node(
                sweep_examples,
                ["seed_pairs", "base_model", block, "heldout_pairs", "params:decontamination", sweep],
                ["learning_rate_sweep.sft_examples", "learning_rate_sweep.sft_funnel"],
                name="learning_rate_sweep_examples",
            ),
            Node(
                sweep_learning_rates,
                ["learning_rate_sweep.sft_examples", "base_model", block, sweep],
                "learning_rate_sweep.trainings",
                name="learning_rate_sweep_trainings",
            ),
            Node(
                learning_rate_sweep_results,
                ["learning_rate_sweep.trainings", block, sweep],
                ["learning_rate_sweep.results", "learning_rate_sweep.summary"],
                name="learning_rate_sweep_results",
            ),
        ]
    )
