"""Shared fixtures: the real sample exports, a throw-away Kedro project, a tiny random model."""

from __future__ import annotations

import copy
import functools
import shutil
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.config import OmegaConfigLoader
from pydantic import BaseModel

from humpback import settings
from humpback.data.sample import SAMPLE_FILES, default_sample_dir, stage_sample_data
from humpback.params import project_parameters

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = default_sample_dir(REPO_ROOT)


def load_params(env: str) -> dict:
    """The parameters as a run in ``env`` sees them (conf/base with the environment's overrides)."""
    loader = OmegaConfigLoader(
        conf_source=str(REPO_ROOT / "conf"), **{**settings.CONFIG_LOADER_ARGS, "default_run_env": env}
    )
    return copy.deepcopy(dict(loader["parameters"]))


@functools.cache
def _validated(env: str) -> dict[str, BaseModel]:
    return project_parameters(env, str(REPO_ROOT / "conf"))


def params(path: str, env: str = "test", **changes: Any) -> Any:
    """The validated parameter object at a dotted ``path`` (``curation``, ``m1.training``) as conf/base
    + conf/``env`` ship it, with ``changes`` (nested dicts for nested blocks) validated on top: tests run
    on a configuration the project ships, never on defaults of their own."""
    head, *rest = path.split(".")
    value = _validated(env)[head]
    for name in rest:
        value = getattr(value, name)
    if not changes:
        return value
    return type(value).model_validate(_merge(value.model_dump(), changes))


def _merge(base: dict, changes: dict) -> dict:
    merged = dict(base)
    for key, value in changes.items():
        merged[key] = _merge(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return merged


@pytest.fixture(scope="session")
def shared_data() -> Path:
    missing = [name for name in SAMPLE_FILES if not (SHARED_DATA / name).is_file()]
    if missing:
        pytest.fail(f"sample exports {missing} not found in {SHARED_DATA} (set HUMPBACK_SAMPLE_DIR)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def oasst1_messages(shared_data) -> pd.DataFrame:
    return pd.read_parquet(shared_data / "oasst1_sample.parquet")


@pytest.fixture(scope="session")
def c4_documents(shared_data) -> pd.DataFrame:
    return pd.read_parquet(shared_data / "c4_en_sample.parquet")


def report(data: Path, name: str) -> Path:
    """The newest version of the run report ``data/08_reporting/<name>`` (reports are versioned:
    ``<name>/<timestamp>/<file name>``)."""
    versions = sorted((data / "08_reporting" / name).iterdir())
    return versions[-1] / Path(name).name


def make_project(folder: Path, shared_data: Path) -> Path:
    """A copy of the project's configuration in ``folder``, with the sample staged in data/01_raw."""
    shutil.copytree(REPO_ROOT / "conf", folder / "conf", ignore=shutil.ignore_patterns("local"))
    (folder / "conf" / "local").mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", folder / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "labels", folder / "labels")
    (folder / "src").mkdir()  # Kedro checks the source folder exists; the package is installed
    stage_sample_data(shared_data, folder / "data" / "01_raw")
    return folder


@pytest.fixture
def kedro_project(tmp_path, shared_data, monkeypatch) -> Path:
    """A throw-away project (:func:`make_project`) as the working directory."""
    make_project(tmp_path, shared_data)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEDRO_DISABLE_TELEMETRY", "true")
    return tmp_path


@pytest.fixture(scope="session")
def tiny_raw_model_dir(tmp_path_factory) -> Path:
    """A randomly initialised 2-layer Llama saved as a *base* model would come: the embedded
    SmolLM2 tokenizer with its chat template removed, like Llama-3.2-3B's or Gemma's base tokenizer.

    Good for mechanics (shapes, masking, saving, batching, stopping), not for quality.
    """
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from humpback.pipelines.base_model.materialise import embedded_model

    gguf = embedded_model("smollm2-135m-instruct").locate()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.chat_template = None
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
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    path = tmp_path_factory.mktemp("tiny_llama_raw")
    model.save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    assert not AutoTokenizer.from_pretrained(path).chat_template
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_raw_model_dir, tmp_path_factory) -> Path:
    """The tiny base model materialised as the base_model pipeline does it (the project's prompt
    format, the answer-end token saved as the stop token): what every later stage reads."""
    from humpback.datasets import ModelCheckpointDataset
    from humpback.pipelines.base_model.nodes import materialise_base_model

    path = tmp_path_factory.mktemp("tiny_llama") / "base_model"
    source = params("base_model", source="local", name_or_path=str(tiny_raw_model_dir), dtype="float32")
    ModelCheckpointDataset(path=str(path)).save(materialise_base_model(source))
    return path


def clean_documents(documents: pd.DataFrame, **overrides) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The web cleaning rules with the shipped parameters (plus ``overrides``)."""
    from humpback.pipelines.ingestion.web import clean_web_documents

    return clean_web_documents(documents, params("ingestion.web", **overrides))


@pytest.fixture(scope="session")
def web_sample(c4_documents) -> pd.DataFrame:
    """A dozen cleaned real c4 documents."""
    return clean_documents(c4_documents.head(60))[0].head(12)


#: held-out pairs as the evaluation stage makes them: four prompts, each with its own human answer,
#: which shares words with it (controls pair each prompt with another prompt's answer too)
HELDOUT_PAIRS = pd.DataFrame(
    {
        "prompt_id": ["a", "b", "c", "d"],
        "instruction": [
            "Why do tides rise and fall?",
            "How do I boil an egg?",
            "What is a prime number?",
            "Name a blue flower.",
        ],
        "reference": [
            "Tides rise and fall because the Moon pulls the water.",
            "Boil the egg in water for eight minutes.",
            "A prime number has exactly two divisors.",
            "The cornflower is a blue flower.",
        ],
    }
)

#: the test environment's backend settings (transformers, float32, no progress bars)
TEST_LLM = params("llm")
#: in memory, no shard folder (tests that resume give one)
NO_SHARDS = params("generation", shard_dir=None)


@pytest.fixture(autouse=True)
def _vllm_where_it_starts(request):
    """A test marked ``vllm`` runs wherever vLLM starts (CPU build included); elsewhere it is
    skipped with the reason (``humpback.llm.platform.vllm_problem``)."""
    if request.node.get_closest_marker("vllm") is None:
        return
    from humpback.llm.platform import vllm_problem

    if (problem := vllm_problem()) is not None:
        pytest.skip(f"vLLM cannot start here: {problem}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A vLLM test skipped on a machine where vLLM starts is a failure: the skip would hide the
    vLLM path from the run (an importorskip that hides a broken import, say)."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and item.get_closest_marker("vllm") is not None:
        from humpback.llm.platform import vllm_problem

        if vllm_problem() is None:
            reason = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
            report.outcome = "failed"
            report.longrepr = f"vLLM starts on this machine, yet this vLLM test was skipped: {reason}"
