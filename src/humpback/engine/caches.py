"""What the runner remembers between stages of one run: tokenizers, keyed on the content of their
files, and the identity of weights, keyed on the state of their folder; a checkpoint saved again at
the same path is read again."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Any

from humpback.datasets import CheckpointHandle
from humpback.datasets.checkpoint import weights_digest
from humpback.llm import load_tokenizer

#: files of a checkpoint folder that never change its tokenizer: weights, the card, our metadata
NOT_TOKENIZER_FILES = {"README.md", "humpback.json", "model.safetensors.index.json"}
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".gguf"}


def cached_tokenizer(model_path: str, trust_remote_code: bool) -> Any:
    """The model's tokenizer (with its chat template), for reading only: the prompts are rendered
    with it. Keyed on the content of the folder's tokenizer files, so the checkpoints trained from
    one base share one tokenizer (Gemma's holds ~250 MB) and an edited template is read again."""
    files = _tokenizer_files_digest(model_path, _folder_state(model_path))
    _folder_with[files] = model_path
    return _tokenizer_for_files(files, trust_remote_code)


def forget_tokenizers() -> None:
    """Drop the cached tokenizers (they load again on demand): before a vLLM engine starts, whose
    client holds its own tokenizer and a pool of copies."""
    _tokenizer_for_files.cache_clear()


#: the last folder seen with each set of tokenizer files (it exists now): where they are loaded from
_folder_with: dict[str, str] = {}


@functools.lru_cache(maxsize=4)
def _tokenizer_for_files(files: str, trust_remote_code: bool) -> Any:
    return load_tokenizer(_folder_with[files], trust_remote_code=trust_remote_code)


@functools.lru_cache(maxsize=4)
def _tokenizer_files_digest(model_path: str, state: int) -> str:
    """Hash of every file of a local folder but weights and cards; a Hub id stands for itself."""
    folder = Path(model_path)
    if not folder.is_dir():
        return model_path
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file() and path.name not in NOT_TOKENIZER_FILES and path.suffix not in WEIGHT_SUFFIXES:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


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
