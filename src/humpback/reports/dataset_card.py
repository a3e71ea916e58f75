"""Dataset cards (Hugging Face ``README.md`` format) for the datasets a run makes, so each export
folder can be pushed to the Hub as it is: metadata from ``huggingface_hub.DatasetCardData``, then
provenance (sources and licences, the models that made the data with their weights hashes, the
parameters), the funnel counts and the score histogram. Nothing in a card is typed by hand.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any

import pandas as pd
from huggingface_hub import DatasetCard, DatasetCardData

from humpback.reports.model_card import CITATIONS, SEED_DATASET, WEB_DATASET, framework_versions, markdown_table

#: the card's text, a Jinja template (huggingface_hub renders it, with the metadata as ``card_data``)
TEMPLATE = files("humpback.reports").joinpath("templates/dataset_card.md")
#: the data file of every export, as the card's ``configs`` names it
DATA_FILE = "data/train-00000-of-00001.parquet"
SOURCES = {
    SEED_DATASET: ("apache-2.0", "seed pairs: first-turn prompts with their rank-0 English replies"),
    WEB_DATASET: ("odc-by", "c4 `en` documents: the candidate responses"),
}


def size_category(rows: int) -> str:
    for limit, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if rows < limit:
            return label
    return "n>1M"


def render_dataset_card(
    *,
    name: str,
    summary: str,
    frame: pd.DataFrame,
    sources: list[str],
    models: list[dict[str, Any]],
    parameters: dict[str, Any],
    funnel: pd.DataFrame,
    scores: pd.Series | None = None,
) -> str:
    """The card of one exported dataset.

    Args:
        name: the dataset's name in the run (``iteration1_curated_pairs``).
        summary: what the rows are, in a sentence or two.
        frame: the exported rows (their count and columns go in the card).
        sources: the Hub datasets the rows come from (keys of :data:`SOURCES`).
        models: the models that made the data: role, base model, weights sha256.
        parameters: the parameter blocks that shaped the data.
        funnel: the counts from the raw data to these rows (any table).
        scores: the curator's scores of the rated pairs, for the histogram.
    """
    data = DatasetCardData(
        language=["en"],
        license=sorted({SOURCES[source][0] for source in sources}),
        pretty_name=f"humpback {name}",
        size_categories=[size_category(len(frame))],
        source_datasets=sources,
        task_categories=["text-generation"],
        tags=["humpback", "instruction-backtranslation", "synthetic"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": DATA_FILE}]}],
    )
    histogram = None
    if scores is not None:
        counts = scores.dropna().astype(int).value_counts().reindex(range(1, 6), fill_value=0)
        histogram = markdown_table(("score", "pairs"), counts.items())
    context = {
        "name": name,
        "summary": summary,
        "rows": len(frame),
        "columns": ", ".join(f"`{column}`" for column in frame.columns),
        "sources": [(source, *SOURCES[source]) for source in sources],
        "models": models,
        "funnel": _frame_table(funnel),
        "histogram": histogram,
        "parameters": json.dumps(parameters, indent=2, sort_keys=True, default=str),
        "versions": list(framework_versions().items()),
        "citations": CITATIONS,
    }
    return str(DatasetCard.from_template(data, template_str=TEMPLATE.read_text(encoding="utf-8"), **context))


def _frame_table(frame: pd.DataFrame) -> str:
    return markdown_table(frame.columns, frame.itertuples(index=False))
