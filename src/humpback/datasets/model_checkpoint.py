"""A Kedro dataset for Hugging Face model checkpoints.

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

from kedro.io.core import AbstractDataset, DatasetError

METADATA_FILE = "humpback.json"


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


class ModelCheckpointDataset(AbstractDataset[ModelArtifacts, CheckpointHandle]):
    """Saves :class:`ModelArtifacts` as an HF folder; loads a :class:`CheckpointHandle`.

    Example catalog entry::

        base_model:
          type: humpback.datasets.ModelCheckpointDataset
          path: data/06_models/base_model
    """

    def __init__(self, path: str, metadata: dict[str, Any] | None = None) -> None:
        self._path = Path(path)
        self.metadata = metadata

    def load(self) -> CheckpointHandle:
        if not (self._path / "config.json").is_file():
            raise DatasetError(f"no Hugging Face checkpoint at {self._path} (config.json missing)")
        meta_file = self._path / METADATA_FILE
        metadata = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
        return CheckpointHandle(path=str(self._path.resolve()), metadata=metadata)

    def save(self, data: ModelArtifacts) -> None:
        if not isinstance(data, ModelArtifacts):
            raise DatasetError(f"ModelCheckpointDataset saves ModelArtifacts, got {type(data).__name__}")
        # Write to a sibling folder first so an interrupted save never leaves a half checkpoint
        # where a later stage would find it.
        staging = self._path.with_name(self._path.name + ".partial")
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
        shutil.rmtree(self._path, ignore_errors=True)
        staging.rename(self._path)

    def _exists(self) -> bool:
        return (self._path / "config.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
