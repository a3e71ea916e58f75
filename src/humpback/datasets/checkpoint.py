"""Model checkpoints as Hugging Face folders, without Kedro: what the catalog's
:class:`~humpback.datasets.model_checkpoint.ModelCheckpointDataset` saves and loads, and what a
machine without Kedro (a launched training process, the GPU check) writes and reads alike.

Saving writes a model and its tokenizer as a Hugging Face folder (safetensors weights, tokenizer,
chat template) plus ``humpback.json`` with provenance. Loading returns a light
:class:`CheckpointHandle` — the folder and its metadata, no weights — because each later stage
loads the weights with its own backend (transformers, vLLM, a training process) and a handle can
be sent to worker processes cheaply.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

METADATA_FILE = "humpback.json"


class CheckpointError(ValueError):
    """No checkpoint where one was expected, or something else than a model to save."""


@dataclass(frozen=True)
class CheckpointHandle:
    """Where a saved checkpoint is, and what is known about it."""

    path: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelArtifacts:
    """What a node returns to have a checkpoint saved: model, tokenizer and metadata."""

    model: Any
    tokenizer: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    #: extra files to write beside the weights, name -> text (model card, metrics…)
    files: dict[str, str] = field(default_factory=dict)


def weights_digest(folder: Path) -> str:
    """Hash of the weight files: stages key their cached results on the weights, not on when they
    were saved, so a deterministic retraining still reuses finished shards."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*.safetensors")):
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def read_checkpoint(path: Path) -> CheckpointHandle:
    """The handle of the checkpoint in ``path``."""
    if not (path / "config.json").is_file():
        raise CheckpointError(f"no Hugging Face checkpoint at {path} (config.json missing)")
    meta_file = path / METADATA_FILE
    metadata = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    return CheckpointHandle(path=str(path.resolve()), metadata=metadata)


def write_checkpoint(path: Path, data: ModelArtifacts) -> None:
    """Save ``data`` as a Hugging Face folder in ``path``, whole or not at all."""
    if not isinstance(data, ModelArtifacts):
        raise CheckpointError(f"a checkpoint saves ModelArtifacts, got {type(data).__name__}")
    # Write to a sibling folder first so an interrupted save never leaves a half checkpoint
    # where a later stage would find it.
    staging = path.with_name(path.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    data.model.save_pretrained(staging, safe_serialization=True)
    data.tokenizer.save_pretrained(staging)
    for name, text in data.files.items():
        (staging / PurePosixPath(name).name).write_text(text)
    metadata = {
        "saved_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "weights_sha256": weights_digest(staging),
        "num_parameters": int(sum(p.numel() for p in data.model.parameters())),
        "dtype": str(next(data.model.parameters()).dtype).removeprefix("torch."),
        **data.metadata,
    }
    (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True, default=str))
    shutil.rmtree(path, ignore_errors=True)
    staging.rename(path)
