"""Self-augmentation: the backward model writes one instruction for every web document."""

from __future__ import annotations

import logging
import math
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from humpback.data.dedup import exact_key, near_duplicate_mask
from humpback.data.fitting import CUT_MARGIN
from humpback.data.language import other_language
from humpback.datasets import CheckpointHandle
from humpback.engine.caches import cached_tokenizer
from humpback.engine.runner import (
    TRUNCATED,
    CompletionLogprobs,
    Generate,
    ModelTask,
    parse_completion_nll,
    run_model_task,
)
from humpback.llm import LLMConfig
from humpback.llm.base import chat_token_ids
from humpback.params import AugmentationParams, GenerationRunParams
from humpback.pipelines.augmentation.postprocess import (
    DUPLICATE,
    ECHO,
    NEAR_DUPLICATE,
    OK,
    OTHER_LANGUAGE,
    clean_instruction,
    looks_like_request,
)
from humpback.prompts import backward_chat
from humpback.reports import health
from humpback.reports.model_card import render_model_card
from humpback.reports.statistics import paired_win_share

logger = logging.getLogger(__name__)

#: statuses of an instruction that the cleaner accepted (screening may have set it aside after)
CLEANED = (OK, OTHER_LANGUAGE, DUPLICATE, NEAR_DUPLICATE)
CANDIDATE_COLUMNS = ["doc_id", "url", "response", "raw_instruction", "instruction", "status", "request_like"]


def _document_prompt(row: dict[str, Any]):
    return backward_chat(row.get("prompt_text") or row["text"])  # the document as cut for the model, if cut


def as_in_training(documents: pd.DataFrame, backward_model: CheckpointHandle, llm: LLMConfig, new_tokens: int):
    """``documents`` with ``prompt_text``: each document as the backward model saw documents in its
    training, cut to fit its ``max_length`` beside the instruction it writes (``new_tokens`` at most).
    A model trained on documents of ≤ 320 tokens would otherwise write for documents of 700. The
    candidate's response stays the whole document."""
    max_length = (backward_model.metadata.get("hyperparameters") or {}).get("max_length")
    if not max_length or documents.empty:
        return documents.assign(prompt_text=documents["text"])
    tokenizer = cached_tokenizer(backward_model.path, llm.trust_remote_code)
    template = len(chat_token_ids(tokenizer, backward_chat("x"))) - len(tokenizer.encode("x", add_special_tokens=False))
    room = max(max_length - template - new_tokens - CUT_MARGIN, 1)
    cut = []
    for text in documents["text"]:
        ids = tokenizer.encode(text, add_special_tokens=False)
        cut.append(text if len(ids) <= room else tokenizer.decode(ids[:room]).strip())
    logger.info(
        "augmentation: %d of %d documents cut to %d tokens, as the backward model was trained (max_length %d)",
        sum(a != b for a, b in zip(cut, documents["text"])),
        len(documents),
        room,
        max_length,
    )
    return documents.assign(prompt_text=cut)


def parse_instructions(params: AugmentationParams, documents: pd.DataFrame, raw: pd.DataFrame) -> pd.DataFrame:
    """The backward model's output → the instruction, why it is unusable if it is (``truncated``: it
    was still writing at ``max_new_tokens``), and whether it reads as a request."""
    cleaned = [
        (None, TRUNCATED)
        if cut and not params.use_truncated
        else clean_instruction(
            output, text, params.min_instruction_chars, params.max_instruction_chars, params.max_copied_fraction
        )
        for output, cut, text in zip(raw["output"], raw["truncated"], documents["text"])
    ]
    return pd.DataFrame(
        {
            "raw_instruction": raw["output"].to_numpy(),
            "instruction": [instruction for instruction, _ in cleaned],
            "status": [status for _, status in cleaned],
            "request_like": [looks_like_request(instruction) for instruction, _ in cleaned],
        }
    )


def instruction_task(params: AugmentationParams) -> ModelTask:
    return ModelTask(
        name="augmentation",
        reads=("text",),
        prompt=_document_prompt,
        request=Generate(params.sampling),
        parse=partial(parse_instructions, params),
        status="status",
    )


def _answer_prompt(row: dict[str, Any]):
    return backward_chat(row["reference"])


INSTRUCTION_NLL_COLUMNS = ["prompt_id", "instruction_tokens", "instruction_nll", "status"]


def instruction_nll(
    heldout_pairs: pd.DataFrame, model: CheckpointHandle, llm: LLMConfig, generation: GenerationRunParams
) -> pd.DataFrame:
    """Negative log-likelihood of each held-out pair's true instruction given its human answer, in the
    backward model's prompt: how well a model does the backward model's job, with no generation."""
    task = ModelTask(
        name="augmentation_instruction_nll",
        reads=("reference",),
        prompt=_answer_prompt,
        request=CompletionLogprobs("instruction"),
        parse=partial(parse_completion_nll, "instruction"),
        status="status",
    )
    return run_model_task(task, heldout_pairs, model, llm, generation)[INSTRUCTION_NLL_COLUMNS]


def instruction_nll_after_other_answers(
    heldout_pairs: pd.DataFrame, model: CheckpointHandle, llm: LLMConfig, generation: GenerationRunParams
) -> pd.DataFrame:
    """:func:`instruction_nll` of each held-out true instruction after *another* pair's human answer
    (the next one's): the same instruction tokens, so only whether the model reads the answer can
    make them likelier after their own."""
    shifted = heldout_pairs.assign(reference=health.mismatched(heldout_pairs["reference"]))
    return instruction_nll(shifted, model, llm, generation)


def base_model_instruction_nll(
    heldout_pairs: pd.DataFrame,
    base: CheckpointHandle,
    llm: LLMConfig,
    generation: GenerationRunParams,
    params: AugmentationParams,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`instruction_nll` after each pair's own answer and after another's, under the base model
    (``augmentation.base_reference_controls``; no rows when off). Any language model finds an
    instruction likelier after an answer that shares its words: where the base model passes the
    discrimination check too, the check shows only that the wiring works."""
    if not params.base_reference_controls:
        empty = pd.DataFrame(columns=INSTRUCTION_NLL_COLUMNS)
        return empty, empty
    own = instruction_nll(heldout_pairs, base, llm, generation)
    return own, instruction_nll_after_other_answers(heldout_pairs, base, llm, generation)


def _discrimination(own_answer_nll: pd.DataFrame, other_answer_nll: pd.DataFrame, params: AugmentationParams):
    """(share, low, high, pairs) of held-out true instructions likelier after their own answer."""
    both = own_answer_nll.merge(other_answer_nll, on="prompt_id", suffixes=("_own", "_other")).dropna(
        subset=["instruction_nll_own", "instruction_nll_other"]
    )
    share, low, high = paired_win_share(
        -both["instruction_nll_own"].to_numpy(float),
        -both["instruction_nll_other"].to_numpy(float),
        params.control_bootstrap_samples,
        params.control_seed,
    )
    return share, low, high, both


def _reads_more_than_base(both: pd.DataFrame, base_both: pd.DataFrame, params: AugmentationParams):
    """(share, low, high) of held-out pairs on which M_yx's gap (the instruction's NLL after another
    answer minus after its own) is above the base model's: what training taught M_yx about reading
    the answer. Word overlap gives both models a gap; the base model against itself scores 0.5."""
    pairs = both.merge(base_both, on="prompt_id", suffixes=("", "_base"))
    gap = pairs["instruction_nll_other"] - pairs["instruction_nll_own"]
    base_gap = pairs["instruction_nll_other_base"] - pairs["instruction_nll_own_base"]
    return paired_win_share(
        gap.to_numpy(float), base_gap.to_numpy(float), params.control_bootstrap_samples, params.control_seed
    )


def summarise_backward_controls(
    own_answer_nll: pd.DataFrame,
    other_answer_nll: pd.DataFrame,
    base_own_answer_nll: pd.DataFrame,
    base_other_answer_nll: pd.DataFrame,
    candidates: pd.DataFrame,
    params: AugmentationParams,
) -> dict:
    """Whether the backward model does its job: under M_yx, a held-out true instruction is likelier
    after its own answer than after another's in most pairs (paired, bootstrap over pairs; the same
    instruction tokens on both sides, so its length cannot decide), and what it wrote reads as
    requests, not echoes. With the base model's likelihoods, its share stands beside M_yx's, and a
    check the base model passes too is labelled "checks wiring"."""
    share, low, high, both = _discrimination(own_answer_nll, other_answer_nll, params)
    discrimination = "held-out true instruction likelier after its own answer than after another's (paired share)"
    base_reading, base_rows = {}, []
    if len(base_own_answer_nll) and len(base_other_answer_nll):
        base_share, base_low, base_high, base_both = _discrimination(base_own_answer_nll, base_other_answer_nll, params)
        gain, gain_low, gain_high = _reads_more_than_base(both, base_both, params)
        base_reading = {
            "base_discrimination_share": base_share,
            "base_discrimination_ci_low": base_low,
            "base_discrimination_ci_high": base_high,
            "discrimination_checks_wiring": bool(base_low >= params.min_discrimination_share),
            "reads_more_than_base_share": gain,
            "reads_more_than_base_ci_low": gain_low,
            "reads_more_than_base_ci_high": gain_high,
        }
        base_rows = [
            health.information("backward model (base)", discrimination, base_share, low=base_low, high=base_high),
            health.criterion(
                "backward model",
                "answer read more than the base model reads it: the NLL gap (after another's answer − after "
                "its own) above the base model's on the same pair (paired share; the base model: 0.5)",
                gain,
                low=gain_low,
                high=gain_high,
                threshold=f"lower bound ≥ {params.min_discrimination_share}",
                passed=gain_low >= params.min_discrimination_share,
                failure=(
                    f"the answer read no more than the base model reads it (share {gain:.2f} "
                    f"[{gain_low:.2f}, {gain_high:.2f}] < {params.min_discrimination_share:.2f})"
                ),
            ),
        ]
    tokens = both["instruction_tokens_own"].sum()
    usable = candidates["status"].isin(CLEANED)  # whether or not screened out afterwards
    request_like = float(candidates.loc[usable, "request_like"].mean()) if usable.any() else math.nan
    echo = float((candidates["status"] == ECHO).mean()) if len(candidates) else math.nan
    rows = [
        health.criterion(
            "backward model",
            discrimination
            + (
                ": checks wiring (the base model passes it too)"
                if base_reading.get("discrimination_checks_wiring")
                else ""
            ),
            share,
            low=low,
            high=high,
            threshold=f"lower bound ≥ {params.min_discrimination_share}",
            passed=low >= params.min_discrimination_share,
            failure=(
                f"true instructions not told by their answers (share {share:.2f} [{low:.2f}, {high:.2f}] "
                f"< {params.min_discrimination_share:.2f})"
            ),
        ),
        health.at_least(
            "backward model",
            "request-like share of usable instructions",
            request_like,
            params.min_request_like_share,
            "request-like share",
        ),
        health.at_most("backward model", "echo share of outputs", echo, params.max_echo_share, "echo share"),
    ]
    rows[1:1] = base_rows  # the base model's reading beside M_yx's discrimination
    check = {
        "heldout_pairs": len(both),
        "instruction_nll_own_answer": float(both["instruction_nll_own"].sum() / tokens) if tokens else math.nan,
        "instruction_nll_other_answer": float(both["instruction_nll_other"].sum() / tokens) if tokens else math.nan,
        "discrimination_share": share,
        "discrimination_ci_low": low,
        "discrimination_ci_high": high,
        **base_reading,
        "request_like_share": request_like,
        "echo_share": echo,
        "min_discrimination_share": params.min_discrimination_share,
        "min_request_like_share": params.min_request_like_share,
        "max_echo_share": params.max_echo_share,
        **health.verdict(rows),
    }
    if not check["passed"]:
        logger.warning("BACKWARD MODEL FAILED ITS CONTROLS: %s", check["reason"])
    return check


def generate_instructions(
    web_documents: pd.DataFrame,
    backward_model: CheckpointHandle,
    llm: LLMConfig,
    params: AugmentationParams,
    generation: GenerationRunParams,
) -> pd.DataFrame:
    """One candidate pair per document: raw model output, cleaned instruction and a status.

    Returns:
        Every document as a candidate; only rows whose status is ``ok`` are curated. Rows the cleaner
        rejected have no instruction; screened-out ones (another language, a repeat) keep theirs.
    """
    documents = as_in_training(web_documents, backward_model, llm, params.sampling.max_new_tokens)
    candidates = run_model_task(instruction_task(params), documents, backward_model, llm, generation)
    candidates = screen_instructions(candidates.rename(columns={"text": "response"})[CANDIDATE_COLUMNS], params)
    usable = candidates["status"] == OK
    logger.info(
        "augmentation: %d of %d documents got a usable instruction; %.1f%% of those read as requests "
        "(a question, or a request or imperative opening)",
        int(usable.sum()),
        len(candidates),
        100 * candidates.loc[usable, "request_like"].mean() if usable.any() else 0.0,
    )
    return candidates


def screen_instructions(candidates: pd.DataFrame, params: AugmentationParams) -> pd.DataFrame:
    """Instructions in another language (``augmentation.language``), then repeats of an earlier
    instruction (exact after case and punctuation, then near: ``augmentation.instruction_duplicates``)
    lose their ``ok`` status, so curation never sees them; the curation funnel counts each status."""
    status = candidates["status"].copy()
    ok = status == OK
    status[ok] = np.where(other_language(candidates.loc[ok, "instruction"], params.language), OTHER_LANGUAGE, OK)
    ok = status == OK
    status[ok] = np.where(candidates.loc[ok, "instruction"].map(exact_key).duplicated(), DUPLICATE, OK)
    ok = status == OK
    if params.instruction_duplicates.enabled and ok.any():
        near = near_duplicate_mask(candidates.loc[ok, "instruction"].tolist(), params.instruction_duplicates)
        status[ok] = np.where(near, NEAR_DUPLICATE, OK)
    counts = status.value_counts()
    logger.info(
        "augmentation: screened out %d instructions in another language, %d exact and %d near duplicates",
        counts.get(OTHER_LANGUAGE, 0),
        counts.get(DUPLICATE, 0),
        counts.get(NEAR_DUPLICATE, 0),
    )
    return candidates.assign(status=status)


def backward_model_card(backward_model: CheckpointHandle, backward_check: dict) -> str:
    """The backward model's card with its controls: whether it writes the requests it was trained to."""
    return render_model_card(backward_model.metadata, checks=[backward_check])
