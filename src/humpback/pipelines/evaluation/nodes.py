"""Evaluation: does the pipeline make a better model?

For every model of a run, on held-out oasst1 first-turn prompts: the negative log-likelihood of the
human reference answers (fast, no generation), greedy responses, and pairwise judgements of one
model against another by a judge model, in both orders. Reports: a comparison table and plot, and
each trained checkpoint's model card with its figures.
"""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from humpback.data.text import repeated_ngram_share
from humpback.datasets import CheckpointHandle
from humpback.engine.answer_scoring import answer_tag, content_nll_per_token, score_answers, tagged_prompt
from humpback.engine.runner import (
    OK,
    PROMPT_TOO_LONG,
    Generate,
    ModelTask,
    OptionProbabilities,
    run_model_task,
)
from humpback.llm import LLMConfig
from humpback.params import EvaluationParams, GenerationRunParams
from humpback.pipelines.evaluation.judging import (
    FIRST,
    SECOND,
    TIE,
    challenger_score,
    given,
    outcome,
    verdict,
    win_rate,
)
from humpback.pipelines.evaluation.style import style_summary
from humpback.prompts import JUDGE_OPTIONS, judge_chat
from humpback.reports import health
from humpback.reports.model_card import render_model_card
from humpback.reports.statistics import (
    bootstrap_ratio,
    paired_nll_difference,
    preference_accuracy,
    preference_difference,
)

logger = logging.getLogger(__name__)


def parse_answers(prompts: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "response": raw["output"].fillna("").to_numpy(),
            "status": np.where(raw["output"].isna(), PROMPT_TOO_LONG, OK),
            # still answering at max_new_tokens: judged as it is, counted against the stop rate
            "truncated": raw["truncated"].astype(bool).to_numpy(),
        }
    )


REFERENCE_COLUMNS = [
    "prompt_id",
    "reference_tokens",
    "reference_nll",
    "reference_content_tokens",
    "reference_content_nll",
    "status",
]


def score_references(
    heldout: pd.DataFrame, model: CheckpointHandle, llm: LLMConfig, generation: GenerationRunParams
) -> pd.DataFrame:
    """Negative log-likelihood of each reference answer under ``model`` (teacher forcing), with and
    without the end-of-turn token (``reference_content_*``): the end token alone moves the figure.

    Returns:
        prompt_id, reference_tokens, reference_nll (sum over tokens; NaN when prompt and answer do
        not fit the context), the same without the end token, and status.
    """
    scored = score_answers("evaluation_reference_nll", heldout, "reference", answer_tag(model), model, llm, generation)
    return scored[REFERENCE_COLUMNS]


def score_references_under_web_tag(
    heldout: pd.DataFrame, model: CheckpointHandle, llm: LLMConfig, generation: GenerationRunParams
) -> pd.DataFrame:
    """The same under the web tag, for a model trained with tags (M1, M2): the augmented pairs were
    trained under it, so this shows what they taught apart from the assistant tag. Models trained
    without tags get status ``untagged`` and no figure."""
    if answer_tag(model) is None:
        return pd.DataFrame(
            {
                "prompt_id": heldout["prompt_id"].to_numpy(),
                **{column: math.nan for column in REFERENCE_COLUMNS[1:-1]},
                "status": UNTAGGED,
            },
            columns=REFERENCE_COLUMNS,
        )
    scored = score_answers("evaluation_reference_nll_web_tag", heldout, "reference", "web", model, llm, generation)
    return scored[REFERENCE_COLUMNS]


#: the status of a figure that needs tags, for a model trained without them
UNTAGGED = "untagged"


def score_preferences(
    ranked: pd.DataFrame, model: CheckpointHandle, llm: LLMConfig, generation: GenerationRunParams
) -> pd.DataFrame:
    """Does ``model`` prefer the best-ranked human reply to the worst-ranked one? Per-token NLL of
    each reply's text (without the end token, so length and stopping do not decide), under the
    prompt format the model answers with; ``prefers_chosen`` is 1, 0, or 0.5 for a tie."""
    # both replies in one task: the model is loaded once
    replies = pd.concat([ranked.assign(reply=ranked[side]) for side in ("chosen", "rejected")], ignore_index=True)
    scored = score_answers("evaluation_preferences", replies, "reply", answer_tag(model), model, llm, generation)
    per_token = content_nll_per_token(scored, "reply")
    fitted = (scored["status"] == OK).to_numpy()
    chosen_per_token, rejected_per_token = per_token[: len(ranked)], per_token[len(ranked) :]
    scored_both = fitted[: len(ranked)] & fitted[len(ranked) :]
    prefers = np.select([chosen_per_token < rejected_per_token, chosen_per_token > rejected_per_token], [1.0, 0.0], 0.5)
    return pd.DataFrame(
        {
            "prompt_id": ranked["prompt_id"].to_numpy(),
            "source": ranked["source"].to_numpy(),
            "chosen_nll_per_token": chosen_per_token,
            "rejected_nll_per_token": rejected_per_token,
            "prefers_chosen": np.where(scored_both, prefers, math.nan),
            "status": np.where(scored_both, OK, PROMPT_TOO_LONG),
        }
    )


def generate_responses(
    heldout: pd.DataFrame,
    model: CheckpointHandle,
    llm: LLMConfig,
    params: EvaluationParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """The model's answer to every held-out prompt (resumable, in shards)."""
    task = ModelTask(
        name="evaluation_responses",
        reads=("instruction",),
        prompt=partial(tagged_prompt, answer_tag(model)),
        request=Generate(params.sampling),
        parse=parse_answers,
        status="status",
    )
    answers = run_model_task(task, heldout, model, llm, generation)
    return answers[["prompt_id", "instruction", "response", "status", "truncated"]]


def alpaca_eval_outputs(label: str, responses: pd.DataFrame) -> list[dict[str, str]]:
    """The answers in AlpacaEval's ``model_outputs.json`` format, to judge them with its annotators
    where a capable judge is at hand (answers that never came are left out)."""
    answered = responses.loc[responses["status"] == OK]
    return [
        {"instruction": instruction, "output": output, "generator": f"humpback-{label}"}
        for instruction, output in zip(answered["instruction"], answered["response"])
    ]


def choose_judge(aligned_model: CheckpointHandle, params: EvaluationParams) -> CheckpointHandle:
    """The configured judge: the aligned model (an instruction-tuned model, never one of the
    contestants, which are all fine-tuned from the base model), or a folder / Hub id."""
    if params.judge.model != "aligned":
        return CheckpointHandle(path=params.judge.model, metadata={"role": "judge", "model_id": params.judge.model})
    return aligned_model


#: judge orders: the column shown first, the column shown second
ORDERS = {
    "challenger_first": ("response_challenger", "response_reference"),
    "challenger_second": ("response_reference", "response_challenger"),
}


def _judge_prompt(first: str, second: str, row: dict[str, Any]):
    return judge_chat(row["instruction"], row[first], row[second])


def parse_judgements(order: str, pairs: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The judge's option probabilities in this order, and its verdict (None: not judged)."""
    values = raw[JUDGE_OPTIONS].to_numpy(dtype=float)
    return pd.DataFrame(
        {
            **{f"{order}_p_{option}": values[:, index] for index, option in enumerate(JUDGE_OPTIONS)},
            f"{order}_verdict": [verdict(row) for row in values],
        }
    )


def judgement_task(order: str, stage: str = "evaluation_judge") -> ModelTask:
    first, second = ORDERS[order]
    return ModelTask(
        name=f"{stage}_{order}",
        reads=("instruction", first, second),
        prompt=partial(_judge_prompt, first, second),
        request=OptionProbabilities(tuple(JUDGE_OPTIONS)),
        parse=partial(parse_judgements, order),
        status=f"{order}_verdict",
    )


def judge_pairs(
    challenger: pd.DataFrame,
    reference: pd.DataFrame,
    judge: CheckpointHandle,
    llm: LLMConfig,
    params: EvaluationParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """The judge's verdict on each held-out prompt: challenger's answer first, then second.

    Returns:
        prompt_id, the option probabilities of both orders, their verdicts, the challenger's score
        (1 win, 0.5 tie, 0 loss, averaged over orders) and the outcome.
    """
    pairs = challenger[["prompt_id", "instruction", "response"]].merge(
        reference[["prompt_id", "response"]],
        on="prompt_id",
        suffixes=("_challenger", "_reference"),
        validate="one_to_one",
    )
    orders = list(ORDERS) if params.judge.both_orders else ["challenger_first"]
    result = _judge(pairs, orders, "evaluation_judge", judge, llm, params, generation)
    second = result["challenger_second_verdict"] if params.judge.both_orders else [None] * len(result)
    scores = [challenger_score(a, b) for a, b in zip(result["challenger_first_verdict"], second)]
    result["score"] = [math.nan if s is None else s for s in scores]
    result["outcome"] = [outcome(s) for s in scores]
    return result


def _per_token(nll: pd.DataFrame, column: str) -> float:
    scored = nll.loc[nll["status"] == OK]
    tokens = scored[f"{column}_tokens"].sum()
    return float(scored[f"{column}_nll"].sum() / tokens) if tokens else math.nan


def summarise_model(
    label: str,
    model: CheckpointHandle,
    nll: pd.DataFrame,
    web_tag_nll: pd.DataFrame,
    preferences: pd.DataFrame,
    responses: pd.DataFrame,
    style_detector: dict,
    params: EvaluationParams,
) -> dict:
    """One row of the comparison table: who the model is, how it fits the references (with and
    without the end token; under the web tag too for tagged models), whether it prefers the better
    of two human replies, and how its own answers read (web style, on-topic opening, stopping,
    repetition)."""
    answered = responses.loc[responses["status"] == OK]
    if "truncated" not in answered:  # responses saved before generations said whether they were cut
        answered = answered.assign(truncated=math.nan)
    mean_nll = _per_token(nll, "reference")
    training = model.metadata.get("training", {})
    return {
        "model": label,
        "role": model.metadata.get("role", "unknown"),
        "rewriting_mode": (model.metadata.get("curation") or {}).get("rewriting_mode"),
        "training_examples": training.get("examples"),
        "augmented_examples": training.get("composition", {}).get("augmented"),
        "prompts": len(nll),
        "reference_tokens": int(nll.loc[nll["status"] == OK, "reference_tokens"].sum()),
        "reference_nll": mean_nll,
        "reference_perplexity": math.exp(mean_nll) if not math.isnan(mean_nll) else math.nan,
        "reference_nll_without_end": _per_token(nll, "reference_content"),
        "reference_nll_web_tag": _per_token(web_tag_nll, "reference"),
        "not_scored": int((nll["status"] != OK).sum()),
        **preference_accuracy(preferences, params.bootstrap_samples, params.sample_seed),
        "mean_response_chars": float(responses["response"].str.len().mean()) if len(responses) else math.nan,
        **style_summary(answered, style_detector, params.bootstrap_samples, params.sample_seed),
        "repeated_4gram_share": float(answered["response"].map(repeated_ngram_share).mean())
        if len(answered)
        else math.nan,
    }


def _first_position_rate(judgements: pd.DataFrame) -> float:
    """Share of decisive verdicts that preferred whichever answer came first: 0.5 is no position bias."""
    given = judgements[[c for c in judgements.columns if c.endswith("_verdict")]].stack().dropna()
    return float((given == "first").sum() / max(1, (given != "tie").sum()))


def control_pairs(heldout: pd.DataFrame) -> pd.DataFrame:
    """Pairs whose better answer is known without labels: each held-out prompt's own human answer
    (shown as the "challenger") against the next prompt's human answer, which does not answer it."""
    if len(heldout) < 2:
        raise ValueError("judge controls need at least two held-out prompts (one answer is the other's mismatch)")
    return pd.DataFrame(
        {
            "prompt_id": heldout["prompt_id"].to_numpy(),
            "instruction": heldout["instruction"].to_numpy(),
            "response_challenger": heldout["reference"].to_numpy(),
            "response_reference": health.mismatched(heldout["reference"]),
        }
    )


def judge_controls(
    heldout: pd.DataFrame,
    judge: CheckpointHandle,
    llm: LLMConfig,
    params: EvaluationParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """The judge's verdicts on the control pairs in both orders, and whether each picked the human answer.

    Returns:
        prompt_id, both orders' probabilities and verdicts, ``correct_first`` / ``correct_second`` (the
        human answer won in that order; None: not judged) and ``consistent`` (the same answer, or a
        tie, preferred in both orders).
    """
    # both orders always: order consistency is one of the checks
    judged = _judge(control_pairs(heldout), list(ORDERS), "evaluation_judge_controls", judge, llm, params, generation)
    first, second = judged["challenger_first_verdict"], judged["challenger_second_verdict"]
    human_first = {FIRST: "human", SECOND: "other", TIE: TIE}
    human_second = {FIRST: "other", SECOND: "human", TIE: TIE}
    return judged.assign(
        correct_first=[v == FIRST if given(v) else None for v in first],
        correct_second=[v == SECOND if given(v) else None for v in second],
        consistent=[
            human_first[a] == human_second[b] if given(a) and given(b) else None for a, b in zip(first, second)
        ],
    )


def _judge(
    pairs: pd.DataFrame,
    orders: list[str],
    stage: str,
    judge: CheckpointHandle,
    llm: LLMConfig,
    params: EvaluationParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """The judge's option probabilities and verdict for each pair in each order, on the judge's own
    backend settings (``evaluation.judge.llm``); the texts judged are dropped."""
    judge_llm = llm.with_overrides(params.judge.llm)
    for order in orders:
        pairs = run_model_task(judgement_task(order, stage), pairs, judge, judge_llm, generation)
    return pairs.drop(columns=["instruction", "response_challenger", "response_reference"])


def summarise_judge_controls(controls: pd.DataFrame, judge: CheckpointHandle, params: EvaluationParams) -> dict:
    """Whether the judge passes its controls: accuracy and order consistency against the thresholds
    in ``evaluation.judge``; the reason when it does not. The accuracy's interval is a bootstrap over
    prompts: a prompt's two verdicts (one per order) are not independent draws."""
    per_prompt = controls[["correct_first", "correct_second"]].astype(float)
    judged = per_prompt.notna().sum(axis=1)
    correct = per_prompt.fillna(0).sum(axis=1)
    consistent = controls["consistent"].dropna().astype(bool)
    answered = judged > 0
    accuracy, low, high = bootstrap_ratio(
        correct[answered], judged[answered], params.bootstrap_samples, params.sample_seed
    )
    consistency = float(consistent.mean()) if len(consistent) else math.nan
    thresholds = params.judge
    name = judge.metadata.get("model_id") or judge.metadata.get("role") or judge.path
    first_position = _first_position_rate(controls)
    rows = [
        health.at_least(
            f"judge ({name})",
            "picks the human answer over another prompt's",
            accuracy,
            thresholds.min_control_accuracy,
            "control accuracy",
            low=low,
            high=high,
        ),
        health.at_least(
            f"judge ({name})",
            "same verdict in both orders",
            consistency,
            thresholds.min_order_consistency,
            "order consistency",
        ),
        health.information(f"judge ({name})", "first-position rate (0.5: no position bias)", first_position),
    ]
    return {
        "judge": name,
        "control_prompts": len(controls),
        "control_accuracy": accuracy,
        "control_accuracy_ci_low": low,
        "control_accuracy_ci_high": high,
        "order_consistency": consistency,
        "first_position_rate": first_position,
        "min_control_accuracy": thresholds.min_control_accuracy,
        "min_order_consistency": thresholds.min_order_consistency,
        **health.verdict(rows),
    }


def nll_difference(challenger: pd.DataFrame, reference: pd.DataFrame, samples: int, seed: int) -> dict:
    """Reference-answer NLL per token of the challenger minus the reference model's (negative: the
    challenger fits the human answers better), with a paired 95 % bootstrap interval over prompts;
    with the end token and without it."""
    result = {}
    for column, suffix in (("reference", ""), ("reference_content", "_without_end")):
        nll = paired_nll_difference(challenger, reference, column, samples, seed)
        result |= {
            f"nll_difference{suffix}": nll["difference"],
            f"nll_difference{suffix}_ci_low": nll["ci_low"],
            f"nll_difference{suffix}_ci_high": nll["ci_high"],
        }
    return result


def summarise_comparison(
    challenger: str,
    reference: str,
    judgements: pd.DataFrame,
    judge_check: dict,
    challenger_nll: pd.DataFrame,
    reference_nll: pd.DataFrame,
    challenger_preferences: pd.DataFrame,
    reference_preferences: pd.DataFrame,
    params: EvaluationParams,
) -> dict:
    """Win rate of ``challenger`` against ``reference`` with its interval (only from a judge that
    passed its controls: otherwise "inconclusive", with the reason), the judge's position bias, and
    the judge-free measures paired over prompts: reference-NLL and preference-accuracy differences."""
    scores = [None if math.isnan(s) else float(s) for s in judgements["score"]]
    result = {
        "challenger": challenger,
        "reference": reference,
        "judge": judge_check["judge"],
        **win_rate(scores, params.z),
        "first_position_rate": _first_position_rate(judgements),
        "judge_passed": judge_check["passed"],
        "win_rate_status": "ok"
        if judge_check["passed"]
        else f"inconclusive: judge failed its controls ({judge_check['reason']})",
        **nll_difference(challenger_nll, reference_nll, params.bootstrap_samples, params.sample_seed),
        **preference_difference(
            challenger_preferences, reference_preferences, params.bootstrap_samples, params.sample_seed
        ),
    }
    if not judge_check["passed"]:
        result.update(win_rate=math.nan, ci_low=math.nan, ci_high=math.nan)
        logger.warning("WIN RATE INCONCLUSIVE: %s vs %s: %s", challenger, reference, result["win_rate_status"])
    return result


def comparison_report(*summaries: dict) -> tuple[pd.DataFrame, pd.DataFrame, go.Figure]:
    """The models table, the win-rate table and a plot of both."""
    models = pd.DataFrame([s for s in summaries if "model" in s])
    wins = pd.DataFrame([s for s in summaries if "challenger" in s])
    figure = go.Figure()
    if not wins.empty:
        labels = [f"{c} vs {r}" for c, r in zip(wins["challenger"], wins["reference"])]
        figure.add_bar(
            x=labels,
            y=wins["win_rate"],
            name="win rate (ties half)",
            yaxis="y",
            error_y={
                "type": "data",
                "symmetric": False,
                "array": wins["ci_high"] - wins["win_rate"],
                "arrayminus": wins["win_rate"] - wins["ci_low"],
            },
        )
    if not models.empty:
        figure.add_bar(x=models["model"], y=models["reference_nll"], name="reference NLL per token", yaxis="y2")
    figure.update_layout(
        title="Held-out evaluation",
        barmode="group",
        yaxis={"title": "win rate", "range": [0, 1]},
        yaxis2={"title": "NLL per token", "overlaying": "y", "side": "right"},
        shapes=[{"type": "line", "xref": "paper", "x0": 0, "x1": 1, "y0": 0.5, "y1": 0.5, "line": {"dash": "dot"}}],
    )
    return models, wins, figure


def update_model_card(model: CheckpointHandle, summary: dict, judge_check: dict, *comparisons: dict) -> str:
    """The checkpoint's card, re-rendered with its evaluation figures and the judge's controls (they
    decide whether its win rates count)."""
    evaluation = summary | {"comparisons": [c for c in comparisons if c["challenger"] == summary["model"]]}
    return render_model_card(model.metadata, evaluation, checks=[judge_check])
