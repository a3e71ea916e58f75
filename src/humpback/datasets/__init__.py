"""Project datasets: only what kedro-datasets does not provide (model checkpoints)."""

from humpback.datasets.model_checkpoint import CheckpointHandle, ModelArtifacts, ModelCheckpointDataset

__all__ = ["CheckpointHandle", "ModelArtifacts", "ModelCheckpointDataset"]
