"""The documentation follows the code: the parameter reference is generated, the README stays short
and names only commands that exist."""

import importlib.util
import re

from tests.conftest import REPO_ROOT

README = (REPO_ROOT / "README.md").read_text()


def parameter_docs():
    spec = importlib.util.spec_from_file_location("parameter_docs", REPO_ROOT / "scripts/parameter_docs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parameter_reference_is_generated_from_the_models():
    """Regenerate it with `python scripts/parameter_docs.py > docs/parameters.md`."""
    assert (REPO_ROOT / "docs/parameters.md").read_text() == parameter_docs().render()


def test_every_parameter_says_what_it_does():
    rows = [line for line in parameter_docs().render().splitlines() if line.startswith("| `")]
    undescribed = [line.split(" | ")[0] for line in rows if line.rstrip().endswith("|  |")]
    assert len(rows) > 150 and undescribed == []


def test_readme_is_short_and_links_only_to_files_that_exist():
    assert len(README.encode()) <= 12_000
    links = re.findall(r"\]\(((?:docs|conf|notebooks|scripts|benchmarks|src)/[^)#]+)", README)
    assert links and [link for link in links if not (REPO_ROOT / link).exists()] == []


def test_readme_commands_name_pipelines_environments_and_scripts_that_exist():
    """Every `kedro run` in the README names a registered pipeline and an existing environment, and
    every script or notebook it names exists: a renamed pipeline or file fails here."""
    from kedro.framework.project import pipelines
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(REPO_ROOT)
    named_pipelines = set(re.findall(r"kedro run --pipeline=(\w+)", README))
    environments = set(re.findall(r"--env[ =](\w+)", README))
    files = set(re.findall(r"((?:scripts|notebooks)/[\w.]+\.\w+)", README))
    assert {"iteration1", "evaluation", "plan"} <= named_pipelines <= set(pipelines)
    assert {"offline", "nothumpback_m1"} <= environments and all(
        (REPO_ROOT / "conf" / env).is_dir() for env in environments
    )
    assert "scripts/dev.sh" in files and [f for f in files if not (REPO_ROOT / f).is_file()] == []


def test_readme_commands_are_run_by_ci_or_a_named_test():
    """The two set-up commands run in CI (`.ci/run` calls `scripts/dev.sh`); what the quick start
    promises beyond them is exercised by the tests named here."""
    ci = (REPO_ROOT / ".ci/run").read_text()
    assert "scripts/dev.sh test" in README and "scripts/dev.sh test" in ci
    assert "scripts/dev.sh run --env offline" in README  # tests/test_sample.py: its data on a fresh machine
    assert "ingestion.seed.format" in README and "text_column" in README  # test_end_to_end: own data
    assert "kedro jupyter notebook" in README  # test_end_to_end: the notebook in the project's kernel


def test_the_readme_shows_the_own_data_environment_as_it_stands():
    """The README's "Your own data" example is conf/own_data itself (the end-to-end test runs that)."""
    readme = (REPO_ROOT / "README.md").read_text()
    for name in ("catalog.yml", "parameters.yml"):
        text = (REPO_ROOT / "conf" / "own_data" / name).read_text()
        assert f"# conf/own_data/{name}\n{text}```" in readme, name
