"""Model cards (Hugging Face ``README.md`` format) for every checkpoint a run trains.

A card is rendered from the checkpoint's own metadata (``humpback.json``: role, base model,
training summary, hyper-parameters, curation provenance) and, once the evaluation pipeline has run,
its evaluation figures; nothing in it is typed by hand.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
from collections.abc import Iterable, Sequence
from importlib.resources import files
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

ROLES = {
    "backward": (
        "Backward model M_yx",
        "predicts the instruction a response answers (response → instruction); "
        "it writes an instruction for every web document (self-augmentation).",
    ),
    "seed": (
        "Seed model M0",
        "the base model fine-tuned on the seed pairs; it rates the candidate pairs of iteration 1 (self-curation).",
    ),
    "m1": ("M1", "the base model fine-tuned on the seed pairs and the candidate pairs M0 kept (iteration 1)."),
    "m2": ("M2", "the base model fine-tuned on the seed pairs and the candidate pairs M1 kept (iteration 2)."),
}
#: the card's text, a Jinja template (huggingface_hub renders it, with the metadata as ``card_data``)
TEMPLATE = files("humpback.reports").joinpath("templates/model_card.md")
#: the hyper-parameters a card lists, in this order
CARD_HYPERPARAMETERS = (
    "method",
    "learning_rate",
    "end_learning_rate",
    "weight_decay",
    "warmup_ratio",
    "batch_size",
    "num_train_epochs",
    "max_steps",
    "max_length",
    "dropout",
    "precision",
    "train_embeddings",
    "seed",
)
FRAMEWORKS = ["humpback", "transformers", "trl", "peft", "torch", "datasets", "kedro"]
SEED_DATASET, WEB_DATASET = "OpenAssistant/oasst1", "allenai/c4"

CITATIONS = """```bibtex
@article{li2023selfalignment,
  title   = {Self-Alignment with Instruction Backtranslation},
  author  = {Li, Xian and Yu, Ping and Zhou, Chunting and Schick, Timo and Levy, Omer and Zettlemoyer, Luke and Weston, Jason and Lewis, Mike},
  journal = {arXiv preprint arXiv:2308.06259},
  year    = {2023}
}

@article{nguyen2024better,
  title   = {Better Alignment with Instruction Back-and-Forth Translation},
  author  = {Nguyen, Thao and Li, Jeffrey and Oh, Sewoong and Schmidt, Ludwig and Weston, Jason and Zettlemoyer, Luke and Li, Xian},
  journal = {arXiv preprint arXiv:2408.04614},
  year    = {2024}
}

@misc{vonwerra2022trl,
  title        = {{TRL: Transformer Reinforcement Learning}},
  author       = {Leandro von Werra and Younes Belkada and Lewis Tunstall and Edward Beeching and Tristan Thrush and Nathan Lambert and Shengyi Huang and Kashif Rasul and Quentin Gallou{\\'e}dec},
  year         = 2020,
  journal      = {GitHub repository},
  publisher    = {GitHub},
  howpublished = {\\url{https://github.com/huggingface/trl}}
}
```"""


def framework_versions() -> dict[str, str]:
    versions = {}
    for name in FRAMEWORKS:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def render_model_card(
    metadata: dict[str, Any],
    evaluation: dict[str, Any] | None = None,
    checks: Sequence[dict] = (),
    template: str | None = None,
) -> str:
    """The card of one trained checkpoint.

    Args:
        metadata: the checkpoint's ``humpback.json`` content.
        evaluation: figures from the evaluation pipeline (``reference_nll``, ``comparisons``), if any.
        checks: method-health checks (:mod:`humpback.reports.health`) that concern this model, beside the
            curator's check its metadata carries: its own controls as backward model, the judge's
            that decides whether its win rates count.
        template: a Jinja template of the card's text in place of the shipped one
            (``humpback/reports/templates/model_card.md``; its variables are the shipped one's).
    """
    curation = metadata.get("curation") or {}
    title, purpose, randomly_selected = _title(metadata.get("role", "model"), curation)
    if curation.get("curator_check") and not randomly_selected:
        checks = [curation["curator_check"], *checks]
    context = {
        **_training_context(metadata),
        "title": title,
        "purpose": purpose,
        "curation": curation,
        "rater": ROLES.get(curation.get("rater"), (curation.get("rater", "unknown"),))[0],
        "selection": _selection(curation) if curation else "",
        "evaluation": _evaluation_lines(evaluation),
        "health": _health_lines(checks),
        "versions": list(framework_versions().items()),
        "citations": CITATIONS,
    }
    card_data = _card_data(metadata, evaluation, randomly_selected)
    return str(
        ModelCard.from_template(card_data, template_str=template or TEMPLATE.read_text(encoding="utf-8"), **context)
    )


def _title(role: str, curation: dict[str, Any]) -> tuple[str, str, bool]:
    """(title, what the model is, whether its curated pairs were drawn at random)."""
    title, purpose = ROLES.get(role, (role, "a model trained by humpback."))
    if curation.get("method") != "random":
        return title, purpose, False
    return (
        f"{title} (random selection)",
        "the base model fine-tuned on the seed pairs and as many candidate pairs as curation kept for M1, "
        "drawn at random from the same rated pool: curation's control (does the curator beat chance?).",
        True,
    )


def _card_data(metadata: dict[str, Any], evaluation: dict[str, Any] | None, randomly_selected: bool) -> ModelCardData:
    """The card's metadata block: what the Hub indexes (base model, datasets, model-index)."""
    role = metadata.get("role", "model")
    composition = metadata.get("training", {}).get("composition", {})
    used_web = composition.get("augmented") or metadata.get("curation")
    return ModelCardData(
        model_name=f"humpback-{role}" + ("-random-selection" if randomly_selected else ""),
        base_model=metadata.get("base_model", "unknown"),
        datasets=[SEED_DATASET] + ([WEB_DATASET] if used_web else []),
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["humpback", "instruction-backtranslation", "trl", "sft", f"humpback-{role}"],
        eval_results=_eval_results(evaluation) or None,
    )


def _training_context(metadata: dict[str, Any]) -> dict[str, Any]:
    """The template's values that describe the base model, the data and the training run."""
    training, hyper = metadata.get("training", {}), metadata.get("hyperparameters", {})
    composition = training.get("composition", {})
    return {
        "base_model": metadata.get("base_model", "unknown"),
        "licence": metadata.get("base_model_licence"),
        "base_weights": metadata.get("base_model_weights"),
        "prompt_format": _prompt_format(metadata),
        "direction": hyper.get("direction", "forward"),
        "tags": "yes" if hyper.get("use_tags") else "no",
        "examples": training.get("examples", "?"),
        "composition": ", ".join(f"{source}: {count}" for source, count in composition.items())
        or "composition unknown",
        "overlong_truncated": training.get("overlong_truncated", 0),
        "max_length": hyper.get("max_length", "?"),
        "hyperparameters": [(key, _cell(hyper.get(key))) for key in CARD_HYPERPARAMETERS if key in hyper],
        "training": training,
        "numbers": {
            key: _number(training.get(key))
            for key in ("epochs", "train_loss", "heldout_loss_before", "heldout_loss_after", "train_runtime_s")
        },
    }


def _eval_results(evaluation: dict[str, Any] | None) -> list[EvalResult]:
    """The Hub's ``model-index``: held-out reference NLL and perplexity, and each win rate its
    judge's controls allow (an inconclusive one is left out, not written as a number)."""
    if not evaluation:
        return []
    common = {
        "task_type": "text-generation",
        "task_name": "Instruction following (held-out oasst1 first-turn prompts)",
        "dataset_type": SEED_DATASET,
        "dataset_name": f"oasst1 held-out first-turn prompts ({evaluation.get('prompts', '?')})",
    }
    results = [
        EvalResult(**common, metric_type=metric, metric_name=name, metric_value=float(evaluation[key]))
        for key, metric, name in (
            ("reference_nll", "loss", "Reference-answer NLL per token"),
            ("reference_perplexity", "perplexity", "Reference-answer perplexity"),
            ("reference_nll_without_end", "loss", "Reference-answer NLL per token, without the end token"),
            ("preference_accuracy", "accuracy", "Preference for the best-ranked human reply"),
        )
        if isinstance(evaluation.get(key), float) and not math.isnan(evaluation[key])
    ]
    for comparison in evaluation.get("comparisons", []):
        if comparison.get("win_rate_status", "ok") == "ok" and not math.isnan(comparison["win_rate"]):
            results.append(
                EvalResult(
                    **common,
                    metric_type="win_rate",
                    metric_name=f"Win rate vs {comparison['reference']} (judge {comparison['judge']})",
                    metric_value=float(comparison["win_rate"]),
                )
            )
    return results


def _evaluation_lines(evaluation: dict[str, Any] | None) -> list[str]:
    if not evaluation:
        return ["Not evaluated yet: run `kedro run --pipeline=evaluation` to add held-out figures to this card."]
    lines = [
        f"Held-out oasst1 first-turn prompts ({evaluation.get('prompts', '?')}, never used for training).",
        "",
        f"- Mean negative log-likelihood per token of the human reference answers: "
        f"{_number(evaluation.get('reference_nll'))} (perplexity {_number(evaluation.get('reference_perplexity'))}); "
        f"without the end token {_number(evaluation.get('reference_nll_without_end'))}",
    ]
    if isinstance(evaluation.get("reference_nll_web_tag"), float) and not math.isnan(
        evaluation["reference_nll_web_tag"]
    ):
        lines.append(f"- The same under the web tag: {_number(evaluation['reference_nll_web_tag'])}")
    if evaluation.get("preference_prompts"):
        lines.append(
            f"- Preference accuracy (per-token likelihood prefers the best- over the worst-ranked human reply, "
            f"{evaluation['preference_prompts']} prompts): {_number(evaluation.get('preference_accuracy'))} "
            f"[{_number(evaluation.get('preference_ci_low'))}, {_number(evaluation.get('preference_ci_high'))}]; "
            f"by a mean margin of {_number(evaluation.get('preference_margin'))} nats per token "
            f"[{_number(evaluation.get('preference_margin_ci_low'))}, {_number(evaluation.get('preference_margin_ci_high'))}]"
        )
    for comparison in evaluation.get("comparisons", []):
        status = comparison.get("win_rate_status", "ok")
        figure = (
            f"{_number(comparison['win_rate'])} [{_number(comparison['ci_low'])}, {_number(comparison['ci_high'])}] "
            f"— {comparison['wins']} wins, {comparison['ties']} ties, {comparison['losses']} losses"
            if status == "ok"
            else status
        )
        lines.append(
            f"- Win rate vs {comparison['reference']} (judge `{comparison['judge']}`, both orders, ties half): {figure}"
        )
        if "nll_difference" in comparison:
            lines.append(
                f"- Reference NLL per token minus {comparison['reference']}'s (paired bootstrap over prompts): "
                f"{_number(comparison['nll_difference'])} [{_number(comparison['nll_difference_ci_low'])}, "
                f"{_number(comparison['nll_difference_ci_high'])}]"
            )
        if "preference_difference" in comparison:
            lines.append(
                f"- Preference accuracy minus {comparison['reference']}'s (paired bootstrap over prompts): "
                f"{_number(comparison['preference_difference'])} [{_number(comparison['preference_difference_ci_low'])}, "
                f"{_number(comparison['preference_difference_ci_high'])}]; its margin minus theirs "
                f"{_number(comparison.get('preference_margin_difference'))} "
                f"[{_number(comparison.get('preference_margin_difference_ci_low'))}, "
                f"{_number(comparison.get('preference_margin_difference_ci_high'))}]"
            )
    return lines


def _health_lines(checks: Sequence[dict]) -> list[str]:
    if not checks:
        return []
    lines = [
        "## Method health",
        "",
        "Checks of the models that made or judged this model's data, against answers known without labels "
        "(the run's `method_health` report has every check). A failed check means the figures it guards are "
        "not evidence.",
        "",
    ]
    rows = [
        (
            row["model"],
            row["check"],
            _number(float(row["value"])),
            "" if math.isnan(row["ci_low"]) else f"[{_number(row['ci_low'])}, {_number(row['ci_high'])}]",
            row["threshold"],
            {True: "passed", False: "**failed**", None: "information"}[row["passed"]],
        )
        for check in checks
        for row in check["rows"]
    ]
    header = ("model", "check", "value", "95 % interval", "threshold", "verdict")
    return [*lines, markdown_table(header, rows), ""]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table; a missing cell (None, NaN) is left empty."""

    def cell(value: Any) -> str:
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)

    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, row)) + " |" for row in rows])


def _prompt_format(metadata: dict[str, Any]) -> str:
    ends = ", ".join(f"`{token}`" for token in metadata.get("answer_end_tokens", [])) or "?"
    if metadata.get("prompt_format") == "project":
        return f"humpback's plain format (`### User:` / `### Assistant:` headers; the base model had no chat template); answers end with {ends}"
    return f"{metadata.get('prompt_format', 'the model')}'s chat template; answers end with {ends}"


def _selection(curation: dict[str, Any]) -> str:
    action = curation.get("action")
    if action == "kept_despite_failed_controls":
        return f"{_rule(curation)}, **kept although the curator failed its controls** (`on_failed_controls: warn`)"
    if action == "seed_only":
        return (
            f"nothing: the curator failed its controls (`on_failed_controls: seed_only`), {_rule(curation)} not applied"
        )
    return _rule(curation)


def _rule(curation: dict[str, Any]) -> str:
    if curation.get("method") == "random":
        return f"{curation.get('kept')} drawn at random (seed {curation.get('seed')}), as many as curation kept"
    if curation.get("method") == "top_fraction":
        return f"top {curation.get('top_fraction')} by expected score"
    return f"score ≥ {curation.get('threshold')}"


def _number(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _cell(value: Any) -> str:
    """Hyper-parameters as written (5e-05 stays 5e-05, not 0.000)."""
    if isinstance(value, float):
        return f"{value:g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else _number(value)
