"""The Kedro dataset for Hugging Face model checkpoints (:mod:`humpback.datasets.checkpoint` does the work)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kedro.io.core import AbstractDataset, DatasetError

from humpback.datasets.checkpoint import (
    CheckpointError,
    CheckpointHandle,
    ModelArtifacts,
    read_checkpoint,
    write_checkpoint,
)


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
        try:
            return read_checkpoint(self._path)
        except CheckpointError as error:
            raise DatasetError(str(error)) from error

    def save(self, data: ModelArtifacts) -> None:
        try:
            write_checkpoint(self._path, data)
        except CheckpointError as error:
            raise DatasetError(str(error)) from error

    def _exists(self) -> bool:
        return (self._path / "config.json").is_file()

    def _describe(self) -> dict[str, Any]:
        return {"path": str(self._path)}
