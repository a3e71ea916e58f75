"""The curator's controls: pairs whose order is known without labels (each a better pair against a
worse one, paired per prompt where both come from one prompt), and every scorer's results on them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from humpback.data.hand_labels import labelled_pairs
from humpback.params import (
    FORWARD_PASS_SCORERS,
    CurationParams,
)
from humpback.reports import health
from humpback.reports.statistics import paired_win_share, unpaired_auc


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


#: the columns of a control pair
CONTROL_PAIR_COLUMNS = ["doc_id", "prompt_id", "control", "instruction", "response", "label"]
#: the long-format columns of the control scores, besides the pair's
CONTROL_SCORE_COLUMNS = ["scorer", "value", "scored", "score_status", "option_mass"]


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
