"""Hand labels of candidate pairs (``labels/candidate_labels.csv``) joined with the run's documents:
the curator's controls measure the scorer against them, the study's sensitivity test trains on them."""

from __future__ import annotations

import logging

import pandas as pd

logger = logging.getLogger(__name__)


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
