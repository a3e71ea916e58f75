"""The project run through a Kedro session, as `kedro run` would: fast checks of the run itself."""

import contextlib

import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from humpback.hooks import MissingRawDataError
from humpback.params import ParameterError
from tests.conftest import params, report


def run(project, pipeline: str, env: str = "test", runtime_params: dict | None = None, **options):
    """``kedro run --pipeline <pipeline>`` in ``project`` (its data paths are relative to it);
    ``options`` are :meth:`KedroSession.run`'s (``to_nodes=[...]``)."""
    bootstrap_project(project)
    with (
        contextlib.chdir(project),
        KedroSession.create(project_path=project, env=env, runtime_params=runtime_params) as session,
    ):
        return session.run(pipeline_names=[pipeline], **options)


def test_ingestion_writes_seed_pairs_documents_and_funnel(kedro_project):
    run(kedro_project, "ingestion")

    seed = pd.read_parquet(kedro_project / "data/03_primary/seed_pairs.parquet")
    web = pd.read_parquet(kedro_project / "data/03_primary/web_documents.parquet")
    funnel = pd.read_csv(report(kedro_project / "data", "ingestion_funnel.csv"))
    taken = params("ingestion.web").max_documents  # conf/test takes the first documents only
    assert len(seed) == 40  # conf/test caps the seed
    assert 0 < len(web) < taken
    assert set(funnel["source"]) == {"oasst1", "c4"}
    c4 = funnel[funnel["source"] == "c4"]
    assert c4.iloc[0]["remaining"] == taken and c4.iloc[-1]["remaining"] == len(web)


def test_missing_raw_file_names_the_offline_environment(kedro_project):
    (kedro_project / "data/01_raw/c4_en_documents.parquet").unlink()
    with pytest.raises(MissingRawDataError, match=r"(?s)c4_documents.*--env offline"):
        run(kedro_project, "ingestion")


def test_parameter_typo_stops_the_run_before_any_node(kedro_project):
    with pytest.raises(ParameterError, match="ingestion.web.min_charz"):
        run(kedro_project, "ingestion", runtime_params={"ingestion": {"web": {"min_charz": 10}}})
    assert not (kedro_project / "data/03_primary/seed_pairs.parquet").exists()
