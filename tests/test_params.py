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
