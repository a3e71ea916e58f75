import pytest
import yaml

from humpback.params import ParameterError, validate_parameters
from tests.conftest import REPO_ROOT


def load_params(env: str) -> dict:
    params = yaml.safe_load((REPO_ROOT / "conf" / "base" / "parameters.yml").read_text())
    override = REPO_ROOT / "conf" / env / "parameters.yml"
    if env != "base" and override.is_file():
        for key, value in yaml.safe_load(override.read_text()).items():
            params[key] = {**params.get(key, {}), **value} if isinstance(value, dict) else value
    return params


@pytest.mark.parametrize("env", ["base", "test"])
def test_shipped_parameters_are_valid(env):
    validated = validate_parameters(load_params(env))
    assert validated["ingestion"].web.min_chars == 600


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
