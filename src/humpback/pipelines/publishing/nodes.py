"""Hub-ready exports: each dataset a run makes for training, as a Parquet file with its dataset card
beside it (``data/09_export/<name>/``), ready to push as it is."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from humpback.datasets import CheckpointHandle
from humpback.params import AugmentationParams, WebParams
from humpback.reports.dataset_card import SEED_DATASET, WEB_DATASET, render_dataset_card
from humpback.reports.model_card import framework_versions


def _model(handle: CheckpointHandle) -> dict[str, Any]:
    metadata = handle.metadata
    return {
        "role": metadata.get("role", handle.path),
        "base_model": metadata.get("base_model", metadata.get("model_id")),
        "licence": metadata.get("base_model_licence", metadata.get("licence")),
        "weights_sha256": metadata.get("weights_sha256"),
        "base_weights": metadata.get("base_model_weights", metadata.get("weights")),
    }


def with_messages(pairs: pd.DataFrame) -> pd.DataFrame:
    """``pairs`` with a ``messages`` column beside instruction and response: the conversational format
    TRL's trainers and the Hub's chat datasets read (None where a row has no instruction)."""
    return pairs.assign(
        messages=[
            [{"role": "user", "content": instruction}, {"role": "assistant", "content": response}]
            if isinstance(instruction, str) and isinstance(response, str)
            else None
            for instruction, response in zip(pairs["instruction"], pairs["response"])
        ]
    )


def configuration_snapshot(parameters: dict[str, Any]) -> dict[str, Any]:
    """The run's resolved parameters (conf/base and the environment's overrides, as the run saw
    them: validated blocks, as JSON), published beside the data so a dataset says how it was made."""
    resolved = {key: value for key, value in parameters.items() if not key.startswith("_")}
    as_json = json.loads(json.dumps(resolved, default=lambda block: block.model_dump(mode="json")))
    return {"humpback": framework_versions().get("humpback"), "parameters": as_json}


def _curation_facts(provenance: dict) -> dict[str, Any]:
    """The provenance without the curator check's rows (the card states its verdict)."""
    check = provenance.get("curator_check") or {}
    return {key: value for key, value in provenance.items() if key != "curator_check"} | {
        "curator_check_passed": check.get("passed"),
        "curator_check_reason": check.get("reason"),
    }


def export_candidates(
    candidates: pd.DataFrame,
    ingestion_funnel: pd.DataFrame,
    backward_model: CheckpointHandle,
    augmentation: AugmentationParams,
    web: WebParams,
) -> tuple[pd.DataFrame, str]:
    """Every web document with the instruction the backward model wrote for it (or why none)."""
    web_funnel = ingestion_funnel.loc[ingestion_funnel["source"] == "c4", ["rule", "dropped", "remaining"]]
    statuses = candidates["status"].value_counts().rename_axis("rule").reset_index(name="dropped")
    statuses = statuses.assign(rule="augmentation: " + statuses["rule"], remaining=None)
    card = render_dataset_card(
        name="candidates",
        summary="Candidate instruction–response pairs: each cleaned c4 document (the response) with the "
        "instruction the backward model M_yx predicted for it, before curation. Only rows with status `ok` "
        "go on to curation; the others say why not.",
        frame=candidates,
        sources=[WEB_DATASET, SEED_DATASET],
        models=[_model(backward_model)],
        parameters={
            "ingestion.web": web.model_dump(mode="json"),
            "augmentation": augmentation.model_dump(mode="json"),
        },
        funnel=pd.concat([web_funnel, statuses], ignore_index=True),
    )
    return with_messages(candidates), card


def export_curated_pairs(
    name: str,
    curated_pairs: pd.DataFrame,
    curation_funnel: pd.DataFrame,
    scored_candidates: pd.DataFrame,
    provenance: dict,
    backward_model: CheckpointHandle,
) -> tuple[pd.DataFrame, str]:
    """The candidate pairs the iteration's curator kept, with their scores."""
    rater = {
        "role": provenance.get("rater"),
        "weights_sha256": provenance.get("rater_weights_sha256"),
        "base_model": backward_model.metadata.get("base_model"),
        "licence": backward_model.metadata.get("base_model_licence"),
        "base_weights": backward_model.metadata.get("base_model_weights"),
    }
    card = render_dataset_card(
        name=name,
        summary="Curated instruction–response pairs: the candidates the iteration's own model rated best on "
        "the paper's 5-point rubric (self-curation), after any rewriting.",
        frame=curated_pairs,
        sources=[WEB_DATASET, SEED_DATASET],
        models=[_model(backward_model), rater],
        parameters=_curation_facts(provenance),
        funnel=curation_funnel,
        scores=scored_candidates["score"],
    )
    return with_messages(curated_pairs), card


def _training_data_card(name: str, summary: str, frame: pd.DataFrame, provenance: dict, counts: pd.DataFrame) -> str:
    """The card of the data the next model trains on: seed and web sources, made by the curator."""
    return render_dataset_card(
        name=name,
        summary=summary,
        frame=frame,
        sources=[SEED_DATASET, WEB_DATASET],
        models=[{"role": provenance.get("rater"), "weights_sha256": provenance.get("rater_weights_sha256")}],
        parameters=_curation_facts(provenance),
        funnel=counts,
    )


def export_training_pairs(name: str, training_pairs: pd.DataFrame, provenance: dict) -> tuple[pd.DataFrame, str]:
    """The pairs the next model trains on: seed pairs and curated pairs, tagged by source."""
    composition = training_pairs["source"].value_counts().rename_axis("source").reset_index(name="pairs")
    summary = (
        "Training pairs of the next model: the human seed pairs (source `seed`, trained under the "
        "assistant tag) and the curated web pairs (source `augmented`, trained under the web tag)."
    )
    return with_messages(training_pairs), _training_data_card(name, summary, training_pairs, provenance, composition)


def export_sft_examples(name: str, sft_examples: pd.DataFrame, provenance: dict) -> tuple[pd.DataFrame, str]:
    """The next model's training split exactly as it was trained: TRL's conversational
    prompt/completion rows (the tag's system message, the user turn, the assistant answer as cut to
    ``max_length``), so ``SFTTrainer`` can retrain it without this project."""
    trained = sft_examples.loc[sft_examples["split"] == "train"].drop(columns="split").reset_index(drop=True)
    composition = sft_examples.groupby(["split", "source"]).size().rename("examples").reset_index()
    summary = (
        "The training examples of the next model in TRL's conversational prompt/completion format: "
        "`prompt` holds the tag's system message and the instruction, `completion` the answer (cut to the "
        "training length where `truncated`; a cut answer carries no end token). Seed examples held out for "
        "the evaluation loss are not included (see the funnel)."
    )
    return trained, _training_data_card(name, summary, trained, provenance, composition)
