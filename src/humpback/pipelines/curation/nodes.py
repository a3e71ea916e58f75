"""Self-curation: the iteration's own model scores every candidate; the best are kept.

Two kinds of scorer by parameter (``curation.scorer``):

- the paper's 5-point rubric prompt: ``generate`` asks for brief reasoning and ``Score: N`` on the
  last line and parses it robustly (failures are recorded, never fatal); ``option_probabilities``
  reads the distribution over "1".."5" as the next token in one forward pass and keeps the expected
  score and the argmax;
- likelihood scorers, teacher-forced log-probabilities of the answer tokens M1 would train on (end
  token left out), with no generation and no parsing: ``pmi`` (is the answer likelier after its
  instruction than after a request that names no topic? relevance), ``implicit_reward`` (is it
  likelier under the curating model than under the base model? the assistant's form) and
  ``combined`` (a weighted mean of their percentile ranks). Their ``score`` is the quintile (1–5).

Controls check every scorer on pairs whose order is known without labels, each a comparison of a
better pair with a worse one, paired per prompt where both come from one prompt.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from humpback.data.fitting import answers_as_trained
from humpback.datasets import CheckpointHandle
from humpback.engine.answer_scoring import answer_tag, content_nll_per_token, score_answers
from humpback.engine.caches import cached_tokenizer
from humpback.engine.runner import (
    OK,
    PROMPT_TOO_LONG,
    TRUNCATED,
    Generate,
    ModelTask,
    OptionProbabilities,
    run_model_task,
)
from humpback.llm import LLMConfig
from humpback.params import (
    FORWARD_PASS_SCORERS,
    LIKELIHOOD_SCORERS,
    CurationParams,
    GenerationRunParams,
    RewritingParams,
    SelectionParams,
    TrainingParams,
)
from humpback.pipelines.curation.parsing import PARSED, parse_score
from humpback.prompts import SCORE_OPTIONS, TOPIC_FREE_INSTRUCTION, rating_chat
from humpback.reports import health
from humpback.reports.statistics import paired_win_share, unpaired_auc

logger = logging.getLogger(__name__)

PROBABILITY_COLUMNS = [f"p_{option}" for option in SCORE_OPTIONS]


def _rating_prompt(scorer: str, few_shot: int, row: dict[str, Any]):
    return rating_chat(row["instruction"], row["response"], scorer, few_shot)


def parse_generated_scores(pairs: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """``Score: N`` read from the rater's text; why not, when it cannot be read (``truncated``: the
    rationale was cut at ``max_new_tokens`` before the score it ends with)."""
    parsed = [
        (None, TRUNCATED) if cut else parse_score(text) if isinstance(text, str) else (None, PROMPT_TOO_LONG)
        for text, cut in zip(raw["output"], raw["truncated"])
    ]
    return pd.DataFrame(
        {
            "score_raw": raw["output"].to_numpy(),
            "score": pd.array([score for score, _ in parsed], dtype="Int64"),
            "score_status": [status for _, status in parsed],
        }
    )


def parse_option_scores(pairs: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The five next-token probabilities, their mass, the expected score (renormalised over the
    options) and the most probable score."""
    probabilities = raw[SCORE_OPTIONS].to_numpy(dtype=float)
    mass = probabilities.sum(axis=1)
    fits = ~np.isnan(mass)
    normalised = np.where(fits[:, None], probabilities / np.where(fits, mass, 1)[:, None], np.nan)
    argmax = np.where(fits, np.nan_to_num(normalised).argmax(axis=1) + 1, 0)
    return pd.DataFrame(
        {
            **{column: probabilities[:, k] for k, column in enumerate(PROBABILITY_COLUMNS)},
            "option_mass": mass,
            "expected_score": normalised @ np.arange(1, 6),
            "score": pd.array([int(s) if ok else None for s, ok in zip(argmax, fits)], dtype="Int64"),
            "score_status": np.where(fits, PARSED, PROMPT_TOO_LONG),
        }
    )


def rating_task(params: CurationParams, stage: str = "curation", scorer: str | None = None) -> ModelTask:
    """The rubric prompt as a model task, for ``scorer`` (default: the configured one)."""
    scorer = scorer or params.scorer
    generate = scorer == "generate"
    return ModelTask(
        name=f"{stage}_{scorer}",
        reads=("instruction", "response"),
        prompt=partial(_rating_prompt, scorer, params.few_shot),
        request=Generate(params.sampling) if generate else OptionProbabilities(tuple(SCORE_OPTIONS)),
        parse=parse_generated_scores if generate else parse_option_scores,
        status="score_status",
    )


def ranking_column(scorer: str) -> str:
    """The column that orders pairs under ``scorer``: the expected score where the rubric scorer
    gives one, the scorer's own value for the likelihood scorers."""
    return {"option_probabilities": "expected_score", "generate": "score"}.get(scorer, scorer)


def likelihood_scores(
    rows: pd.DataFrame,
    rater: CheckpointHandle,
    base: CheckpointHandle,
    llm: LLMConfig,
    generation: GenerationRunParams,
    stage: str,
    scorers: tuple[str, ...],
) -> pd.DataFrame:
    """Per-token NLL of each answer's text (end token left out; the answer M1 would train on) under
    the curating model after its instruction, and as ``scorers`` need: after a topic-free request
    (pmi) and under the base model after its instruction (implicit_reward). Both under the prompt
    format the curating model answers in.

    Returns:
        ``answer_nll``, ``prior_nll``, ``base_nll`` (NaN where not needed or too long), ``pmi`` =
        prior − answer, ``ifd`` = exp(answer − prior), ``implicit_reward`` = base − answer, and
        ``likelihood_status`` (ok, or prompt_too_long when a needed score did not fit).
    """
    tag = answer_tag(rater)
    needed = set(scorers) | ({"pmi", "implicit_reward"} if "combined" in scorers else set())
    nan = np.full(len(rows), math.nan)

    def nll(name: str, frame: pd.DataFrame, model: CheckpointHandle) -> np.ndarray:
        return content_nll_per_token(
            score_answers(f"{stage}_{name}", frame, "response", tag, model, llm, generation), "response"
        )

    answer = nll("answer_nll", rows, rater)
    prior = nll("answer_prior_nll", rows.assign(instruction=TOPIC_FREE_INSTRUCTION), rater) if "pmi" in needed else nan
    under_base = nll("base_answer_nll", rows, base) if "implicit_reward" in needed else nan
    missing = np.isnan(answer)
    missing |= np.isnan(prior) if "pmi" in needed else False
    missing |= np.isnan(under_base) if "implicit_reward" in needed else False
    return pd.DataFrame(
        {
            "answer_nll": answer,
            "prior_nll": prior,
            "base_nll": under_base,
            "pmi": prior - answer,
            "ifd": np.exp(answer - prior),
            "implicit_reward": under_base - answer,
            "likelihood_status": np.where(missing, PROMPT_TOO_LONG, OK),
        }
    )


def combined_score(values: pd.DataFrame, params: CurationParams) -> np.ndarray:
    """The weighted mean of the pmi and implicit-reward percentile ranks among ``values``' rows."""
    weights = params.combined_weights
    ranks = {name: values[name].rank(pct=True) for name in ("pmi", "implicit_reward")}
    total = weights.pmi * ranks["pmi"] + weights.implicit_reward * ranks["implicit_reward"]
    return (total / (weights.pmi + weights.implicit_reward)).to_numpy(float)


#: the score status of a pair the IFD floor sets aside: its answer is no likelier after its instruction
IFD_FLOOR = "ifd_not_below_1"


def quintile_scores(values: pd.DataFrame, scorer: str, params: CurationParams) -> pd.DataFrame:
    """``score``: the quintile (1–5) of ``scorer``'s value among ``values``' rows, so threshold
    selection, the histogram and the examples work as for the rubric; ``score_status``: scored,
    ``ifd_not_below_1`` where the IFD floor applies (no score), prompt_too_long where it did not fit."""
    value = values[scorer]
    quintile = np.ceil(value.rank(pct=True) * 5).clip(1, 5)
    floored = params.ifd_floor and scorer in ("pmi", "combined")
    below_floor = (values["ifd"] >= 1).to_numpy() if floored else np.zeros(len(values), bool)
    status = np.select([value.isna(), below_floor], [PROMPT_TOO_LONG, IFD_FLOOR], "scored")
    score = pd.array([int(q) if s == "scored" else None for q, s in zip(quintile, status)], dtype="Int64")
    return pd.DataFrame({"score": score, "score_status": status})


def score_by_likelihood(
    rows: pd.DataFrame,
    rater: CheckpointHandle,
    base: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
    stage: str = "curation",
) -> pd.DataFrame:
    """``rows`` with :func:`likelihood_scores`' columns, ``combined``, and the configured likelihood
    scorer's :func:`quintile_scores`."""
    values = likelihood_scores(rows, rater, base, llm, generation, stage, (params.scorer,))
    values["combined"] = combined_score(values, params) if params.scorer == "combined" else math.nan
    values = pd.concat([values, quintile_scores(values, params.scorer, params)], axis=1)
    kept = rows.reset_index(drop=True).drop(columns=[c for c in values.columns if c in rows.columns])
    return pd.concat([kept, values], axis=1)


def as_trained(
    pairs: pd.DataFrame, base: CheckpointHandle, llm: LLMConfig, training: TrainingParams, stage: str
) -> pd.DataFrame:
    """``pairs`` with each ``response`` as the next model's training keeps it (``training``: its
    ``max_length`` and cut, the web tag, the base model's tokenizer it trains with). Scorers and
    controls then rate what would train: a document of 700 tokens trains as its first ~250, and
    scoring the rest would rank text no model learns from (and cost twice the time)."""
    usable = pairs["instruction"].map(lambda v: isinstance(v, str)) & pairs["response"].map(
        lambda v: isinstance(v, str)
    )
    if not usable.any():
        return pairs
    tokenizer = cached_tokenizer(base.path, llm.trust_remote_code)
    kept, cut = answers_as_trained(
        pairs.loc[usable, "instruction"], pairs.loc[usable, "response"], "web", tokenizer, training
    )
    logger.info(
        "%s: %d of %d answers scored as training cuts them (max_length %d)",
        stage,
        cut,
        int(usable.sum()),
        training.max_length,
    )
    response = pairs["response"].astype(object).copy()
    response.loc[usable] = kept
    return pairs.assign(response=response)


def score_candidates(
    rated_candidates: pd.DataFrame,
    rater: CheckpointHandle,
    base: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
    training: TrainingParams,
) -> pd.DataFrame:
    """Every candidate with its score by the configured scorer.

    Returns:
        The input columns plus ``scorer``, ``rater``, ``score`` (1–5 or missing), ``score_status``,
        and the scorer's own: ``score_raw`` (generate); ``p_1``..``p_5``, ``option_mass`` and
        ``expected_score`` (option_probabilities; probabilities renormalised over the five options);
        :func:`likelihood_scores`' columns and ``combined`` (likelihood scorers). ``base`` is read
        by the likelihood scorers only. Each scorer rates the answer as ``training`` will cut it
        (:func:`as_trained`); the rows keep the whole response, which training cuts alike.
    """
    rated = rated_candidates.assign(scorer=params.scorer, rater=rater.metadata.get("role", rater.path))
    scored_as_trained = as_trained(rated, base, llm, training, "curation")
    if params.scorer in LIKELIHOOD_SCORERS:
        scored = score_by_likelihood(scored_as_trained, rater, base, llm, params, generation)
    else:
        scored = run_model_task(rating_task(params), scored_as_trained, rater, llm, generation)
    return scored.assign(response=rated["response"].to_numpy())


def score_with_every_scorer(
    rated_candidates: pd.DataFrame,
    rater: CheckpointHandle,
    base: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
    training: TrainingParams,
) -> pd.DataFrame:
    """Every candidate scored by each forward-pass scorer, whatever the configured one: one row per
    candidate and scorer with ``value`` (what orders pairs under it), ``score`` and ``score_status``
    (a pair the IFD floor sets aside has no score); for the curated-vs-random study. The likelihood
    passes run once, for all three likelihood scorers; every scorer rates the answer as ``training``
    cuts it (:func:`as_trained`), the rows keep the whole response."""
    rated = rated_candidates.reset_index(drop=True)
    columns = ["doc_id", "instruction", "response"]
    scored_as_trained = as_trained(rated, base, llm, training, "curation")
    values = likelihood_scores(scored_as_trained, rater, base, llm, generation, "curation", LIKELIHOOD_SCORERS)
    values["combined"] = combined_score(values, params)
    frames = []
    for scorer in FORWARD_PASS_SCORERS:
        if scorer in LIKELIHOOD_SCORERS:
            scored = pd.concat([rated[columns], quintile_scores(values, scorer, params)], axis=1)
            value = values[scorer]
        else:
            scored = run_model_task(rating_task(params, scorer=scorer), scored_as_trained, rater, llm, generation)
            value = scored[ranking_column(scorer)]
        frames.append(
            scored[["score", "score_status"]]
            .assign(**{column: rated[column].to_numpy() for column in columns})[[*columns, "score", "score_status"]]
            .assign(scorer=scorer, value=value.astype(float).to_numpy())
        )
    return pd.concat(frames, ignore_index=True)[[*columns, "scorer", "score", "score_status", "value"]]


@dataclass(frozen=True)
class Control:
    """A comparison whose answer is known without labels: pairs of kind ``better`` should outrank
    pairs of kind ``worse``; ``paired``: both come from the same prompt, compared per prompt."""

    better: str
    worse: str
    paired: bool
    what: str


#: every control, by the name ``curation.gating_controls`` uses
CONTROLS = {
    "mismatched": Control("human", "mismatched", True, "relevance: own human answer above another prompt's"),
    "web": Control("human", "web", True, "relevance: own human answer above a random web document"),
    "ranked": Control("ranked_best", "ranked_worst", True, "quality: oasst1's best-ranked reply above its worst"),
    "truncated": Control("human", "truncated", True, "quality: human answer above its first half"),
    "boilerplate": Control("human", "boilerplate", True, "quality: human answer above it with web boilerplate"),
    "form": Control("human", "candidate", False, "form: held-out human pairs above this run's candidates"),
}


def labelled_pairs(hand_labels: pd.DataFrame, web_documents: pd.DataFrame) -> pd.DataFrame:
    """The hand labels (doc_id, instruction, score on the paper's rubric) with their documents' text
    from this run's documents; labels whose document the run does not have are dropped and logged."""
    if hand_labels is None or len(hand_labels) == 0:
        return pd.DataFrame(columns=["doc_id", "instruction", "score", "text"])
    missing = {"doc_id", "instruction", "score"} - set(hand_labels.columns)
    if missing:
        raise ValueError(f"hand labels need columns doc_id, instruction and score; missing {sorted(missing)}")
    labelled = hand_labels.merge(web_documents[["doc_id", "text"]], on="doc_id", how="inner")
    if len(labelled) < len(hand_labels):
        logger.warning(
            "hand labels: %d of %d labelled documents are not among this run's web documents; dropped",
            len(hand_labels) - len(labelled),
            len(hand_labels),
        )
    return labelled


def control_pairs(
    heldout_pairs: pd.DataFrame,
    ranked_pairs: pd.DataFrame,
    web_documents: pd.DataFrame,
    candidates: pd.DataFrame,
    hand_labels: pd.DataFrame,
    params: CurationParams,
) -> pd.DataFrame:
    """Pairs whose order is known without labels. Each held-out prompt with: its own human answer,
    the next prompt's (off-topic), a web document (not an answer), its answer cut in half and its
    answer with web boilerplate appended (on-topic, worse). Each ranked prompt (no model trained on
    it) with its best- and worst-ranked human replies. And some of this run's own candidate pairs
    (``candidate``: a generated instruction with its document), for the form control. And the
    hand-labelled candidate pairs (``hand_labelled``, with their ``label``) whose document is among
    ``web_documents``: the text is read from the run's documents, never stored with the labels."""
    if len(heldout_pairs) < 2 or web_documents.empty:
        raise ValueError("curator controls need at least two held-out pairs and one web document")
    seed = params.control_seed
    web = web_documents["text"].sample(
        n=len(heldout_pairs), replace=len(web_documents) < len(heldout_pairs), random_state=seed
    )
    human = heldout_pairs["reference"]
    answers = {
        "human": human.to_numpy(),
        "mismatched": health.mismatched(human),
        "web": web.to_numpy(),
        "truncated": human.map(health.cut_in_half).to_numpy(),
        "boilerplate": human.map(health.with_boilerplate).to_numpy(),
    }
    ranked_pairs = ranked_pairs.head(params.ranked_control_prompts)  # None: every one
    usable = candidates.loc[candidates["instruction"].notna()]  # the pairs curation rates
    drawn = usable.sample(n=min(params.form_control_candidates, len(usable)), random_state=seed)

    labelled = labelled_pairs(hand_labels, web_documents)

    def pairs(kind: str, prompt_ids, instructions, responses, labels=math.nan) -> pd.DataFrame:
        prompt_ids = np.asarray(prompt_ids, dtype=object)
        return pd.DataFrame(
            {
                "doc_id": [f"control-{kind}-{prompt}" for prompt in prompt_ids],
                "prompt_id": prompt_ids,
                "control": kind,
                "instruction": np.asarray(instructions, dtype=object),
                "response": np.asarray(responses, dtype=object),
                "label": np.asarray(labels, dtype=float) if np.ndim(labels) else labels,
            }
        )

    return pd.concat(
        [
            *(pairs(kind, heldout_pairs["prompt_id"], heldout_pairs["instruction"], a) for kind, a in answers.items()),
            *(
                pairs(kind, ranked_pairs["prompt_id"], ranked_pairs["instruction"], ranked_pairs[side])
                for kind, side in (("ranked_best", "chosen"), ("ranked_worst", "rejected"))
            ),
            pairs("candidate", drawn["doc_id"], drawn["instruction"], drawn["response"]),
            pairs("hand_labelled", labelled["doc_id"], labelled["instruction"], labelled["text"], labelled["score"]),
        ],
        ignore_index=True,
    )


def compared_scorers(params: CurationParams) -> tuple[str, ...]:
    """The scorers that rate the controls: the configured one, and with ``compare_scorers`` every
    other but ``generate`` (a rationale per pair costs far more than one forward pass)."""
    if not params.compare_scorers:
        return (params.scorer,)
    return (params.scorer, *(scorer for scorer in FORWARD_PASS_SCORERS if scorer != params.scorer))


#: the long-format columns of the control scores, besides the pair's
CONTROL_SCORE_COLUMNS = ["scorer", "value", "scored", "score_status", "option_mass"]


def curator_controls(
    heldout_pairs: pd.DataFrame,
    ranked_pairs: pd.DataFrame,
    web_documents: pd.DataFrame,
    rated_candidates: pd.DataFrame,
    hand_labels: pd.DataFrame,
    rater: CheckpointHandle,
    base: CheckpointHandle,
    llm: LLMConfig,
    params: CurationParams,
    generation: GenerationRunParams,
    training: TrainingParams,
) -> pd.DataFrame:
    """Every compared scorer's scores of the control pairs, scored exactly as the candidates are:
    one row per pair and scorer, with ``value`` (what orders pairs under that scorer), ``scored``,
    ``score_status`` and, for the option scorer, ``option_mass``. Each ``response`` is the answer as
    ``training`` cuts it, the text the scorers rated (:func:`as_trained`)."""
    pairs = control_pairs(heldout_pairs, ranked_pairs, web_documents, rated_candidates, hand_labels, params)
    pairs = as_trained(pairs, base, llm, training, "curation_controls")
    scorers = compared_scorers(params)
    by_scorer = {}
    likelihood = [scorer for scorer in scorers if scorer in LIKELIHOOD_SCORERS]
    if likelihood:
        values = likelihood_scores(pairs, rater, base, llm, generation, "curation_controls", tuple(likelihood))
        if "combined" in likelihood:
            values["combined"] = combined_score(values, params)
        for scorer in likelihood:
            by_scorer[scorer] = pairs.assign(
                scorer=scorer,
                value=values[scorer].to_numpy(),
                score_status=values["likelihood_status"].to_numpy(),
                option_mass=math.nan,
            )
    for scorer in (s for s in scorers if s not in LIKELIHOOD_SCORERS):
        rated = run_model_task(rating_task(params, "curation_controls", scorer), pairs, rater, llm, generation)
        by_scorer[scorer] = pairs.assign(
            scorer=scorer,
            value=rated[ranking_column(scorer)].astype(float).to_numpy(),
            score_status=rated["score_status"].to_numpy(),
            option_mass=rated["option_mass"].to_numpy() if "option_mass" in rated else math.nan,
        )
    controls = pd.concat([by_scorer[scorer] for scorer in scorers], ignore_index=True)
    controls["scored"] = controls["value"].notna()
    return controls[[*pairs.columns, *CONTROL_SCORE_COLUMNS]]


def control_results(controls: pd.DataFrame, params: CurationParams) -> list[dict]:
    """Every scorer on every control: the share of prompts where the better pair outranks the worse
    (ties half; an AUC over the two samples for an unpaired control) with its bootstrap interval,
    whether it gates, and whether its interval's lower bound reaches ``min_control_auc``."""
    results = []
    for scorer, frame in controls.loc[controls["scored"]].groupby("scorer", sort=False):
        by_prompt = frame.pivot_table(index="prompt_id", columns="control", values="value", aggfunc="first")
        for name, control in CONTROLS.items():
            samples, seed = params.control_bootstrap_samples, params.control_seed
            if control.paired:
                both = by_prompt.reindex(columns=[control.better, control.worse]).dropna().to_numpy(float)
                share, low, high = paired_win_share(both[:, 0], both[:, 1], samples, seed)
                items = len(both)
            else:
                better = frame.loc[frame["control"] == control.better, "value"].to_numpy(float)
                worse = frame.loc[frame["control"] == control.worse, "value"].to_numpy(float)
                share, low, high = unpaired_auc(better, worse, samples, seed)
                items = min(len(better), len(worse))
            results.append(
                {
                    "scorer": scorer,
                    "control": name,
                    "what": control.what,
                    "auc": share,
                    "ci_low": low,
                    "ci_high": high,
                    "items": items,
                    "gates": name in params.gating_controls,
                    "passed": bool(low >= params.min_control_auc),
                }
            )
        labelled = frame.loc[frame["control"] == "hand_labelled"]
        if len(labelled):
            results.append(_hand_label_result(scorer, labelled, params))
    return results


def _hand_label_result(scorer: str, labelled: pd.DataFrame, params: CurationParams) -> dict:
    """The scorer against the hand labels, as the paper measured its curator: the AUC of pairs
    labelled good (``curation.hand_label_good`` or more) against the rest, and the precision of
    what it would keep (the good share of its top ``selection.top_fraction``, five pairs at least)."""
    good = labelled["label"].to_numpy(float) >= params.hand_label_good
    values = labelled["value"].to_numpy(float)
    share, low, high = unpaired_auc(values[good], values[~good], params.control_bootstrap_samples, params.control_seed)
    top = max(5, math.ceil(params.selection.top_fraction * len(labelled)))
    kept = labelled.sort_values("value", ascending=False, kind="stable").head(top)
    return {
        "scorer": scorer,
        "control": "hand_labels",
        "what": f"hand labels: pairs labelled ≥ {params.hand_label_good} above the rest",
        "auc": share,
        "ci_low": low,
        "ci_high": high,
        "items": len(labelled),
        "good": int(good.sum()),
        "precision_kept": float((kept["label"] >= params.hand_label_good).mean()) if len(kept) else math.nan,
        "base_rate": float(good.mean()) if len(good) else math.nan,
        "gates": "hand_labels" in params.gating_controls,
        "passed": bool(low >= params.min_control_auc),
    }


def summarise_curator_controls(controls: pd.DataFrame, rater: CheckpointHandle, params: CurationParams) -> dict:
    """Whether the configured scorer ranks the better pair of each control above the worse one: the
    share of prompts where it does, with a bootstrap interval over prompts; the controls named in
    ``curation.gating_controls`` pass when the lower bound reaches ``curation.min_control_auc``, the
    others are reported. Also how much it could score (parse rate or option mass), the spread of its
    scores, and every compared scorer's results side by side (``by_scorer``)."""
    results = control_results(controls, params)
    own = controls.loc[controls["scorer"] == params.scorer]
    scored = own.loc[own["scored"]]
    check = {
        "rater": rater.metadata.get("role", rater.path),
        "scorer": params.scorer,
        "ranking": ranking_column(params.scorer),
        "control_pairs": len(own),
        "rated_share": float(own["scored"].mean()) if len(own) else math.nan,
        "score_spread": float(scored["value"].std()) if len(scored) > 1 else math.nan,
        "distinct_scores": int(scored["value"].nunique()),
        "min_control_auc": params.min_control_auc,
        "min_rated_share": params.min_rated_share,
        "gating_controls": list(params.gating_controls),
        "by_scorer": results,
    }
    model, rows = f"curator ({check['rater']})", []
    for result in (r for r in results if r["scorer"] == params.scorer):
        name, share, low, high = result["control"], result["auc"], result["ci_low"], result["ci_high"]
        check |= {f"auc_vs_{name}": share, f"auc_vs_{name}_ci_low": low, f"auc_vs_{name}_ci_high": high}
        check[f"prompts_vs_{name}"] = result["items"]
        label = f"{result['what']} ({'paired AUC' if name in CONTROLS and CONTROLS[name].paired else 'AUC'})"
        if not result["gates"]:
            reading = health.against_chance(low, high)
            logger.info(
                "curator control %s (reported, not gating): %.2f [%.2f, %.2f], %s", name, share, low, high, reading
            )
            rows.append(health.information(model, f"{label}: {reading}", share, low=low, high=high))
            continue
        rows.append(
            health.criterion(
                model,
                label,
                share,
                low=low,
                high=high,
                threshold=f"lower bound ≥ {params.min_control_auc}",
                passed=result["passed"],
                failure=f"AUC human vs {name} {share:.2f} [{low:.2f}, {high:.2f}]: lower bound < {params.min_control_auc:.2f}",
            )
        )
    if params.scorer == "option_probabilities":  # every pair gets a score: what can fail is the mass
        check["option_mass"] = float(own["option_mass"].mean()) if len(own) else math.nan
        rows.append(
            health.at_least(
                model,
                "probability on the score options (mean option mass)",
                check["option_mass"],
                params.min_option_mass,
                "option mass",
            )
        )
    else:
        rows.append(
            health.criterion(
                model,
                "share of control pairs scored (parse rate, or fitting the context)",
                check["rated_share"],
                threshold=f"≥ {params.min_rated_share}",
                passed=check["rated_share"] >= params.min_rated_share,
                failure=f"rated {check['rated_share']:.0%} of control pairs < {params.min_rated_share:.0%}",
            )
        )
    rows.append(health.information(model, f"spread of its {check['ranking']} (sd)", check["score_spread"]))
    check |= health.verdict(rows)
    if not check["passed"]:
        logger.warning("CURATOR FAILED ITS CONTROLS (%s): %s", check["rater"], check["reason"])
    return check


def scorer_controls_table(curator_check: dict) -> pd.DataFrame:
    """Every compared scorer's controls side by side, one row per scorer and control."""
    return pd.DataFrame(curator_check["by_scorer"])


class CuratorFailedError(RuntimeError):
    """The curator failed its controls and ``curation.on_failed_controls`` is ``stop``."""


def select_pairs(scored: pd.DataFrame, curator_check: dict, params: CurationParams) -> tuple[pd.DataFrame, dict]:
    """Keep pairs by score threshold (5 as in the paper, or 4) or the top fraction by score, unless
    the curator failed its controls: then ``curation.on_failed_controls`` decides (stop the run,
    keep nothing so the next model trains on the seed pairs, or keep the pick and say so).

    Returns:
        The kept pairs and a summary (with the curator's verdict and the action taken); when nothing
        is kept, the next model trains on the seed data alone and the summary and the log say so.
    """
    selection: SelectionParams = params.selection
    rated = scored.loc[scored["score"].notna()]
    ranking = ranking_column(params.scorer)
    if selection.method == "threshold":
        kept = rated.loc[rated["score"] >= selection.threshold]
    else:
        count = int(np.floor(len(rated) * selection.top_fraction))
        best = rated[ranking].astype(float).sort_values(ascending=False, kind="stable").index[:count]
        kept = rated.loc[best] if count else rated.iloc[:0]
    kept = kept.sort_index()
    passed, action = bool(curator_check.get("passed")), "kept"
    if not passed:
        reason = curator_check.get("reason")
        if params.on_failed_controls == "stop":
            raise CuratorFailedError(
                f"the curator ({curator_check.get('rater')}) failed its controls: {reason}. "
                "curation.on_failed_controls is `stop`; set it to seed_only or warn to go on."
            )
        if params.on_failed_controls == "seed_only":
            kept, action = kept.iloc[:0], "seed_only"
            logger.warning(
                "CURATOR FAILED ITS CONTROLS (%s): nothing kept, the next model trains on seed pairs", reason
            )
        else:
            action = "kept_despite_failed_controls"
            logger.warning("CURATOR FAILED ITS CONTROLS (%s): its pick is kept (on_failed_controls: warn)", reason)
    summary = {
        "method": selection.method,
        "threshold": selection.threshold if selection.method == "threshold" else None,
        "top_fraction": selection.top_fraction if selection.method == "top_fraction" else None,
        "candidates": len(scored),
        "rated": len(rated),
        "kept": len(kept),
        "nothing_selected": kept.empty,
        f"mean_{ranking}_kept": _mean(kept[ranking]),
        "curator_passed": passed,
        "on_failed_controls": params.on_failed_controls,
        "action": action,
    }
    if kept.empty:
        logger.warning(
            "CURATION KEPT NOTHING: 0 of %d rated candidates kept (%s, %s); the next model trains on seed data alone",
            len(rated),
            selection.method,
            action,
        )
    return kept.reset_index(drop=True), summary


def select_random_pairs(scored: pd.DataFrame, curated: dict, params: CurationParams) -> tuple[pd.DataFrame, dict]:
    """Curation's control: as many rated candidates as curation kept, drawn at random from the same
    pool. A model trained on them beside M1 asks whether the curator chose better than chance (the
    paper's quality-versus-quantity question); the mean scores of both samples say how differently
    they were chosen."""
    rated = scored.loc[scored["score"].notna()]
    kept = rated.sample(n=min(curated["kept"], len(rated)), random_state=params.random_selection_seed).sort_index()
    ranking = ranking_column(params.scorer)
    summary = {
        "method": "random",
        "threshold": None,
        "top_fraction": None,
        "seed": params.random_selection_seed,
        "candidates": len(scored),
        "rated": len(rated),
        "kept": len(kept),
        "nothing_selected": kept.empty,
        f"mean_{ranking}_kept": _mean(kept[ranking]),
        f"mean_{ranking}_curated": curated.get(f"mean_{ranking}_kept", math.nan),
        f"mean_{ranking}_rated": _mean(rated[ranking]),
    }
    return kept.reset_index(drop=True), summary


def _mean(values: pd.Series) -> float:
    return float(values.astype(float).mean()) if len(values) else math.nan


def build_training_pairs(seed_pairs: pd.DataFrame, curated_pairs: pd.DataFrame) -> pd.DataFrame:
    """Seed pairs plus curated pairs, each tagged with its source for the system-prompt tags."""
    seed = seed_pairs[["instruction", "response"]].assign(source="seed")
    augmented = curated_pairs[["instruction", "response"]].assign(source="augmented")
    return pd.concat([seed, augmented], ignore_index=True)


def describe_curation(
    selection_summary: dict,
    curator_check: dict,
    web_documents: pd.DataFrame,
    candidates: pd.DataFrame,
    rater: CheckpointHandle,
    curation: CurationParams,
    rewriting: RewritingParams,
) -> dict:
    """How this iteration's training pairs were made, for the trained model's card and metadata."""
    return {
        "rater": rater.metadata.get("role", rater.path),
        "rater_weights_sha256": rater.metadata.get("weights_sha256"),
        "scorer": curation.scorer,
        "few_shot": curation.few_shot,
        "rewriting_mode": rewriting.mode,
        "rewriting_model": rewriting.model if rewriting.mode == "after_curation" else None,
        "documents": len(web_documents),
        "candidates": int((candidates["status"] == "ok").sum()),
        **{key: value for key, value in selection_summary.items() if key != "candidates"},
        "curator_check": curator_check,
    }
