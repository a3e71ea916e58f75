"""Evaluation's judge-free measure of assistant style: the web-style detector, validated on held-out
texts before it scores a model's answers, and each model's answers described by it.

A judge reads answers through its own taste and position bias; these measures read them through
counts. The detector learns assistant replies against the run's web documents; its AUC on texts it
did not see says whether its score means anything (the method-health row). Curation and the web tag
are meant to keep web artefacts out of M1's answers: the score of a model's answers says whether
they did.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from humpback.data.records import stable_order_key, to_frame
from humpback.data.style import WebStyleDetector, answer_style, fit_web_style_detector, opens_on_topic
from humpback.engine.runner import OK
from humpback.params import EvaluationParams, SeedParams, StyleParams
from humpback.reports.health import at_least, information, mismatched
from humpback.reports.statistics import bootstrap_ratio, unpaired_auc

ASSISTANT, WEB = "assistant", "web"


def assistant_replies(
    oasst_messages, seed_pairs: pd.DataFrame, heldout: pd.DataFrame, seed: SeedParams
) -> pd.DataFrame:
    """Replies written as an assistant writes, keyed by the conversation they belong to: oasst1's
    replies in the kept languages (every turn, far more than the seed pairs), the evaluation's trees
    left out; for seed data in another format, its responses."""
    if seed.format != "oasst1":
        return pd.DataFrame({"group": seed_pairs["instruction"], "text": seed_pairs["response"]})
    messages = to_frame(oasst_messages)
    kept = (
        messages["role"].eq("assistant")
        & messages["lang"].isin(seed.languages)
        & ~messages["message_tree_id"].isin(heldout["prompt_id"])
        & ~messages.get("deleted", pd.Series(False, index=messages.index)).fillna(False).astype(bool)
    )
    replies = messages.loc[kept & messages["text"].map(lambda text: isinstance(text, str) and bool(text.strip()))]
    return pd.DataFrame({"group": replies["message_tree_id"], "text": replies["text"]})


def _split(texts: pd.DataFrame, params: StyleParams) -> tuple[pd.Series, pd.Series]:
    """At most ``max_texts`` texts, then a validation part by group (a conversation's replies or a
    document stay on one side): the same texts on every run."""
    keys = texts["group"].astype(str).map(lambda group: stable_order_key(group, params.seed))
    texts = texts.assign(key=keys).sort_values("key").head(params.max_texts)
    held_out = texts["key"].map(lambda key: int(key[:8], 16) / 16**8 < params.validation_share)
    return texts.loc[~held_out, "text"], texts.loc[held_out, "text"]


def fit_style_detector(
    oasst_messages,
    seed_pairs: pd.DataFrame,
    web_documents: pd.DataFrame,
    heldout: pd.DataFrame,
    seed: SeedParams,
    evaluation: EvaluationParams,
) -> tuple[dict, dict]:
    """The detector fitted on one part of each corpus, and its check on the other part: the AUC of
    web documents against assistant replies (threshold ``style.min_auc``), and the on-topic opener's
    control (a prompt's own reference against another prompt's)."""
    params, bootstrap_samples, sample_seed = evaluation.style, evaluation.bootstrap_samples, evaluation.sample_seed
    replies = assistant_replies(oasst_messages, seed_pairs, heldout, seed)
    fit_replies, validation_replies = _split(replies, params)
    fit_web, validation_web = _split(
        pd.DataFrame({"group": web_documents["doc_id"], "text": web_documents["text"]}), params
    )
    if validation_replies.empty or validation_web.empty:
        raise ValueError(
            f"the web-style detector needs held-out texts of both kinds: {len(replies)} assistant replies and "
            f"{len(web_documents)} web documents leave {len(validation_replies)} and {len(validation_web)} "
            "(raise evaluation.style.validation_share or give more data)"
        )
    detector = fit_web_style_detector(fit_replies, fit_web, params.window_chars, params.min_count)
    auc, low, high = unpaired_auc(
        validation_web.map(detector.web_score).to_numpy(),
        validation_replies.map(detector.web_score).to_numpy(),
        bootstrap_samples,
        sample_seed,
    )
    own = heldout.apply(lambda row: opens_on_topic(row["instruction"], row["reference"]), axis=1).to_numpy(float)
    other = np.array(
        [opens_on_topic(i, r) for i, r in zip(heldout["instruction"], mismatched(heldout["reference"].to_numpy()))],
        dtype=float,
    )
    rows = [
        at_least(
            "web-style detector",
            f"AUC, held-out web documents vs assistant replies ({len(validation_web)} vs {len(validation_replies)})",
            auc,
            params.min_auc,
            "the detector's AUC",
            low,
            high,
        ),
        information(
            "on-topic opener",
            "share of references opening on their own prompt",
            *_share(own, bootstrap_samples, sample_seed),
        ),
        information(
            "on-topic opener",
            "share of references opening on another prompt",
            *_share(other, bootstrap_samples, sample_seed),
        ),
    ]
    summary = {
        "fit_texts": {ASSISTANT: len(fit_replies), WEB: len(fit_web)},
        "validation_texts": {ASSISTANT: len(validation_replies), WEB: len(validation_web)},
        "tokens": len(detector.log_ratios),
        "rows": rows,
    }
    return detector.to_dict(), summary


def _share(values: np.ndarray, samples: int, seed: int) -> tuple[float, float, float]:
    return bootstrap_ratio(values, np.ones_like(values), samples, seed)


def style_summary(responses: pd.DataFrame, detector: dict, samples: int, seed: int) -> dict:
    """How a model's answers read, each measure with a 95 % bootstrap interval over prompts: their
    web-style score, the share whose first sentence is on the request, the share that stopped
    before ``max_new_tokens``."""
    answered = responses.loc[responses["status"] == OK]
    read = answer_style(answered, WebStyleDetector.from_dict(detector))
    measures = {
        "web_style": read["web_style"].to_numpy(float),
        "on_topic_opening": read["on_topic_opening"].to_numpy(float),
        "stop_rate": 1 - answered["truncated"].to_numpy(float),
    }
    result = {}
    for name, values in measures.items():
        point, low, high = _share(values, samples, seed)
        result |= {name: point, f"{name}_ci_low": low, f"{name}_ci_high": high}
    return result
