import copy

import pytest
from kedro.config import OmegaConfigLoader

from humpback import settings
from humpback.params import ParameterError, validate_parameters
from tests.conftest import REPO_ROOT

ENVIRONMENTS = sorted(p.name for p in (REPO_ROOT / "conf").iterdir() if p.is_dir() and p.name not in ("base", "local"))


def load_params(env: str) -> dict:
    loader_args = {**settings.CONFIG_LOADER_ARGS, "default_run_env": env}
    loader = OmegaConfigLoader(conf_source=str(REPO_ROOT / "conf"), **loader_args)
    return copy.deepcopy(dict(loader["parameters"]))


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_shipped_parameters_are_valid(env):
    validated = validate_parameters(load_params(env))
    assert validated["ingestion"].web.min_chars == 600
    assert validated["ingestion"].web.boilerplate_keywords  # environments override values, not blocks
    assert validated["backward_model"].training.direction == "backward"


def test_every_problem_is_reported_at_once():
    params = load_params("base")
    params["ingestion"]["web"]["min_chars"] = 5000  # above max_chars
    params["ingestion"]["seed"]["rnak"] = 0  # typo
    params["base_model"]["source"] = "ftp"
    params["trainig"] = {}

    with pytest.raises(ParameterError) as error:
        validate_parameters(params)
    message = str(error.value)
    for expected in ["min_chars (5000) exceeds max_chars", "ingestion.seed.rnak", "base_model.source", "trainig: unknown"]:
        assert expected in message


@pytest.mark.parametrize(("env", "rewriting"), [("nothumpback_m1", "off"), ("nothumpback_m1_rw_f_8b", "self_before_curation")])
def test_seed_model_environments_render_prompts_for_a_base_model(env, rewriting, tiny_raw_model_dir, tmp_path):
    """The two seed models' settings, with the tiny template-less model standing in for the Llama
    base model (no Hub here): the project's prompt format, the eos as stop token, the paper's values."""
    from transformers import AutoTokenizer

    from humpback.datasets import ModelCheckpointDataset
    from humpback.llm.base import chat_token_ids
    from humpback.pipelines.base_model.nodes import materialise_base_model
    from humpback.prompts import forward_chat, rating_chat

    validated = validate_parameters(load_params(env))
    assert validated["base_model"].name_or_path.startswith("meta-llama/Llama-3.") and validated["base_model"].source == "hub"
    assert validated["rewriting"].mode == rewriting and validated["ingestion"].web.max_documents == 502_000
    training = validated["seed_model"].training
    assert (training.learning_rate, training.end_learning_rate, training.weight_decay, training.dropout) == (1e-5, 9e-6, 0.1, 0.1)
    assert training.max_examples == 16_000 and training.steps_by_size and training.precision == "bf16_mixed"
    assert validated["llm"].backend == "vllm" and validated["curation"].selection.threshold == 5

    stand_in = validated["base_model"].model_copy(update={"source": "local", "name_or_path": str(tiny_raw_model_dir), "dtype": "float32"})
    artifacts = materialise_base_model(stand_in.model_dump())
    ModelCheckpointDataset(path=str(tmp_path / "base")).save(artifacts)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    text = tokenizer.decode(chat_token_ids(tokenizer, forward_chat("Name a tide.", "assistant")))
    assert text == f"{tokenizer.bos_token}Respond in the style of an AI assistant.\n\n### User:\nName a tide.\n\n### Assistant:\n"
    rating = tokenizer.decode(chat_token_ids(tokenizer, rating_chat("Q?", "A.", validated["curation"].scorer)))
    assert rating.startswith(f"{tokenizer.bos_token}### User:\n") and rating.endswith("### Assistant:\n")
    assert artifacts.model.generation_config.eos_token_id == [tokenizer.eos_token_id]
