"""Shared fixtures: the real sample exports, a throw-away Kedro project, a tiny random model."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest

from humpback.sample_data import SAMPLE_FILES, default_shared_dir, stage_sample_data

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HUMPBACK_SHARED_DATA", default_shared_dir(REPO_ROOT)))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    missing = [name for name in SAMPLE_FILES if not (SHARED_DATA / name).is_file()]
    if missing:
        pytest.fail(f"sample exports {missing} not found in {SHARED_DATA} (set HUMPBACK_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def oasst1_messages(shared_data) -> pd.DataFrame:
    return pd.read_parquet(shared_data / "oasst1_sample.parquet")


@pytest.fixture(scope="session")
def c4_documents(shared_data) -> pd.DataFrame:
    return pd.read_parquet(shared_data / "c4_en_sample.parquet")


@pytest.fixture
def kedro_project(tmp_path, shared_data, monkeypatch) -> Path:
    """A copy of the project's configuration with the sample staged in data/01_raw, as cwd."""
    shutil.copytree(REPO_ROOT / "conf", tmp_path / "conf", ignore=shutil.ignore_patterns("local"))
    (tmp_path / "conf" / "local").mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "src").mkdir()  # Kedro checks the source folder exists; the package is installed
    stage_sample_data(shared_data, tmp_path / "data" / "01_raw")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    return tmp_path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama with the embedded model's tokenizer, saved as HF folder.

    Good for mechanics (shapes, masking, saving, batching), not for quality.
    """
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from humpback.models import locate_embedded_gguf

    gguf = locate_embedded_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,  # head size 64: vLLM rejects head size 16
        num_key_value_heads=1,
        max_position_embeddings=2048,  # real documents and few-shot rating prompts fit
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    import torch

    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny_llama")
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def clean_documents(documents: pd.DataFrame, **overrides) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The web cleaning rules with their default parameters (plus ``overrides``)."""
    from humpback.params import WebParams
    from humpback.pipelines.ingestion.web import clean_web_documents

    params = WebParams().model_dump(exclude={"split", "max_documents"}) | overrides
    return clean_web_documents(documents, **params)


@pytest.fixture(scope="session")
def web_sample(c4_documents) -> pd.DataFrame:
    """A dozen cleaned real c4 documents."""
    return clean_documents(c4_documents.head(60))[0].head(12)


TEST_LLM = {"backend": "transformers", "dtype": "float32", "show_progress": False, "batch_token_budget": 4096}
