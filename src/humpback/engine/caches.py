"""What the runner remembers between stages of one run: tokenizers and the identity of weights,
each keyed on the state of its folder so a checkpoint saved again at the same path is read again."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from humpback.datasets import CheckpointHandle
from humpback.datasets.checkpoint import weights_digest
from humpback.llm import load_tokenizer


def cached_tokenizer(model_path: str, trust_remote_code: bool) -> Any:
    """The model's tokenizer (with its chat template), for reading only: the prompts are rendered
    with it. Loaded once per folder state, so a checkpoint saved again at the same path is read again."""
    return _tokenizer_for_state(model_path, trust_remote_code, _folder_state(model_path))


@functools.lru_cache(maxsize=8)
def _tokenizer_for_state(model_path: str, trust_remote_code: bool, state: int) -> Any:
    return load_tokenizer(model_path, trust_remote_code=trust_remote_code)


def weights_identity(model: CheckpointHandle) -> str:
    """What identifies the weights: the checkpoint's hash, a local folder's content hash, or for a
    Hub id its name and revision."""
    if model.metadata.get("weights_sha256"):
        return model.metadata["weights_sha256"]
    if Path(model.path).is_dir():
        return _folder_digest(str(Path(model.path).resolve()), _folder_state(model.path))
    return f"{model.path}@{model.metadata.get('revision') or 'main'}"


def _folder_state(path: str) -> int:
    """When a local folder last changed (0 for a Hub id): part of the keys of the caches above."""
    folder = Path(path)
    return max((p.stat().st_mtime_ns for p in folder.iterdir()), default=0) if folder.is_dir() else 0


@functools.lru_cache(maxsize=8)
def _folder_digest(folder: str, state: int) -> str:
    """Content hash of a folder's weights, computed once per folder state."""
    return weights_digest(Path(folder))
