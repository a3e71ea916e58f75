"""Evaluation pipelines, built from one factory.

``evaluation_pipeline`` evaluates some models (reference NLL, responses, model card) and judges some
pairs of them on the held-out prompts, then tabulates. Models evaluated by an earlier pipeline are
read back from their saved datasets, so `evaluation_m2` and `evaluation_variants` add to
`evaluation` without recomputing it.
"""

from kedro.pipeline import Node, Pipeline

from humpback.engine.wiring import with_labels
from humpback.pipelines.evaluation.nodes import (
    alpaca_eval_outputs,
    choose_judge,
    comparison_report,
    generate_responses,
    judge_controls,
    judge_pairs,
    score_preferences,
    score_references,
    score_references_under_web_tag,
    summarise_comparison,
    summarise_judge_controls,
    summarise_model,
    update_model_card,
)
from humpback.pipelines.evaluation.style import fit_style_detector


def style_detector_node() -> Node:
    """The web-style detector, fitted and validated on the run's own texts (``evaluation.style_check``)."""
    return Node(
        fit_style_detector,
        [
            "oasst1_messages",
            "seed_pairs",
            "web_documents",
            "report.heldout_pairs",  # the evaluation's trees are left out of the fit; the controls' are not
            "params:ingestion.seed",
            "params:evaluation",
        ],
        ["evaluation.style_detector", "evaluation.style_check"],
        name="fit_style_detector",
    )


def heldout_pipeline() -> Pipeline:
    """The judge and its controls on the held-out pairs; the web-style detector and its check."""
    return Pipeline(
        [
            Node(choose_judge, ["aligned_model", "params:evaluation"], "evaluation.judge", name="choose_judge"),
            Node(
                judge_controls,
                [
                    "selection.heldout_pairs",
                    "evaluation.judge",
                    "params:llm",
                    "params:evaluation",
                    "params:generation",
                ],
                "evaluation.judge_controls",
                name="judge_controls",
            ),
            style_detector_node(),
            Node(
                summarise_judge_controls,
                ["evaluation.judge_controls", "evaluation.judge", "params:evaluation"],
                "evaluation.judge_check",
                name="summarise_judge_controls",
            ),
        ]
    )


def _model_nodes(label: str, checkpoint: str) -> list[Node]:
    prefix = f"evaluation.{label}"
    return [
        Node(
            score_references,
            ["report.heldout_pairs", checkpoint, "params:llm", "params:generation"],
            f"{prefix}.reference_nll",
            name=f"{label}_score_references",
        ),
        Node(
            score_references_under_web_tag,
            ["report.heldout_pairs", checkpoint, "params:llm", "params:generation"],
            f"{prefix}.reference_nll_web_tag",
            name=f"{label}_score_references_under_web_tag",
        ),
        Node(
            score_preferences,
            ["report.ranked_pairs", checkpoint, "params:llm", "params:generation"],
            f"{prefix}.preferences",
            name=f"{label}_score_preferences",
        ),
        Node(
            generate_responses,
            ["report.heldout_pairs", checkpoint, "params:llm", "params:evaluation", "params:generation"],
            f"{prefix}.responses",
            name=f"{label}_generate_responses",
        ),
        Node(
            with_labels(alpaca_eval_outputs, label),
            f"{prefix}.responses",
            f"{prefix}.model_outputs",
            name=f"{label}_alpaca_eval_outputs",
        ),
        Node(
            with_labels(summarise_model, label),
            [
                checkpoint,
                f"{prefix}.reference_nll",
                f"{prefix}.reference_nll_web_tag",
                f"{prefix}.preferences",
                f"{prefix}.responses",
                "evaluation.style_detector",
                "params:evaluation",
            ],
            f"{prefix}.summary",
            name=f"{label}_summary",
        ),
    ]


def _comparison_nodes(challenger: str, reference: str) -> list[Node]:
    prefix = f"evaluation.{challenger}_vs_{reference}"
    return [
        Node(
            judge_pairs,
            [
                f"evaluation.{challenger}.responses",
                f"evaluation.{reference}.responses",
                "evaluation.judge",
                "params:llm",
                "params:evaluation",
                "params:generation",
            ],
            f"{prefix}.judgements",
            name=f"judge_{challenger}_vs_{reference}",
        ),
        Node(
            with_labels(summarise_comparison, challenger, reference),
            [
                f"{prefix}.judgements",
                "evaluation.judge_check",
                f"evaluation.{challenger}.reference_nll",
                f"evaluation.{reference}.reference_nll",
                f"evaluation.{challenger}.preferences",
                f"evaluation.{reference}.preferences",
                "params:evaluation",
            ],
            f"{prefix}.summary",
            name=f"summarise_{challenger}_vs_{reference}",
        ),
    ]


def evaluation_pipeline(
    report: str,
    evaluate: dict[str, str],
    compare: list[tuple[str, str]],
    table: list[str],
    cards: dict[str, str],
    earlier_comparisons: tuple[tuple[str, str], ...] = (),
) -> Pipeline:
    """Evaluate models, judge pairs, tabulate, and refresh model cards.

    Args:
        report: name of the report datasets (``<report>.models``, ``.win_rates``, ``.plot``).
        evaluate: label → checkpoint dataset of the models evaluated here.
        compare: (challenger, reference) labels judged here.
        table: labels of the models in the table (evaluated here or by an earlier pipeline).
        cards: label → model-card dataset of the trained models evaluated here.
        earlier_comparisons: pairs judged by an earlier pipeline, shown in the table too.
    """
    nodes = [node for label, checkpoint in evaluate.items() for node in _model_nodes(label, checkpoint)]
    nodes += [node for challenger, reference in compare for node in _comparison_nodes(challenger, reference)]
    comparison_summaries = [f"evaluation.{c}_vs_{r}.summary" for c, r in compare]
    earlier_summaries = [f"evaluation.{c}_vs_{r}.summary" for c, r in earlier_comparisons]
    nodes.append(
        Node(
            comparison_report,
            [f"evaluation.{label}.summary" for label in table] + earlier_summaries + comparison_summaries,
            [f"{report}.models", f"{report}.win_rates", f"{report}.plot"],
            name=f"{report}_report",
        )
    )
    for label, card in cards.items():
        nodes.append(
            Node(
                update_model_card,
                [evaluate[label], f"evaluation.{label}.summary", "evaluation.judge_check", *comparison_summaries],
                card,
                name=f"{label}_model_card",
            )
        )
    return heldout_pipeline() + Pipeline(nodes)
