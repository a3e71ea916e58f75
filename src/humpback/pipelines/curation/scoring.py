"""How curation scores a pair: the paper's rubric (read as text or as the next token's
probabilities), the likelihood scorers, and the answer as the next model's training cuts it."""

from __future__ import annotations

import logging
import math
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
)
from humpback.llm import LLMConfig
from humpback.params import (
    CurationParams,
    GenerationRunParams,
    TrainingParams,
)
from humpback.pipelines.curation.parsing import PARSED, parse_score
from humpback.prompts import SCORE_OPTIONS, TOPIC_FREE_INSTRUCTION, rating_chat

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
