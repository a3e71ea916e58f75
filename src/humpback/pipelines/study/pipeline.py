"""The study's own nodes: each arm's training pairs from the scored pool, and the results table.

The registry puts them between the pool (every candidate scored by every forward-pass scorer, a
curation node) and each arm's training and judge-free evaluation (the training and evaluation
stages' nodes under the arm's name).
"""

from kedro.pipeline import Node, Pipeline

from humpback.engine.wiring import with_labels
from humpback.pipelines.study.nodes import (
    ARMS,
    SENSITIVITY_ARMS,
    arm_training_pairs,
    sensitivity_arm_pairs,
    sensitivity_results,
    study_results,
)


def arm_model(arm: str) -> str:
    """The namespace of an arm's model: ``study_<arm>``."""
    return f"study_{arm}"


def _arm_pairs_nodes(arms: tuple[str, ...], function, inputs: list[str]) -> list[Node]:
    """One node per arm writing ``study.<arm>.training_pairs`` with ``function(arm, *inputs)``."""
    return [
        Node(with_labels(function, arm), inputs, f"study.{arm}.training_pairs", name=f"study_{arm}_training_pairs")
        for arm in arms
    ]


def _arm_outputs(arms: tuple[str, ...], kinds: tuple[str, ...]) -> list[str]:
    """Each arm's evaluation outputs of each kind, arm by arm."""
    return [f"evaluation.{arm_model(arm)}.{kind}" for arm in arms for kind in kinds]


def create_pipeline(**kwargs) -> Pipeline:
    pairs = _arm_pairs_nodes(ARMS, arm_training_pairs, ["study.pool", "seed_pairs", "params:study"])
    scores = _arm_outputs(ARMS, ("reference_nll", "preferences"))
    results = Node(study_results, ["params:study", *scores], ["study.results", "study.summary"], name="study_results")
    return Pipeline([*pairs, results])


def sensitivity_pipeline(**kwargs) -> Pipeline:
    """The sensitivity test's own nodes: each arm's pairs from the hand labels, and its results."""
    pairs = _arm_pairs_nodes(SENSITIVITY_ARMS, sensitivity_arm_pairs, ["hand_labels", "web_documents", "params:study"])
    frames = _arm_outputs(SENSITIVITY_ARMS, ("reference_nll", "preferences", "responses"))
    results = Node(
        sensitivity_results,
        ["params:study", "evaluation.style_detector", *frames],
        ["study.sensitivity_results", "study.sensitivity_summary"],
        name="study_sensitivity_results",
    )
    return Pipeline([*pairs, results])
