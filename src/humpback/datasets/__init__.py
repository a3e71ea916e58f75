"""Project datasets: only what kedro-datasets does not provide (model checkpoints).

The checkpoint types import without Kedro (launched trainings and the GPU check use them); the
Kedro dataset is imported when first named.
"""

from humpback.datasets.checkpoint import CheckpointHandle, ModelArtifacts

__all__ = ["CheckpointHandle", "ModelArtifacts", "ModelCheckpointDataset"]


def __getattr__(name: str):
    if name == "ModelCheckpointDataset":
        from humpback.datasets.model_checkpoint import ModelCheckpointDataset

        return ModelCheckpointDataset
    raise AttributeError(f"module 'humpback.datasets' has no attribute {name!r}")
