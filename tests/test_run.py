"""The project run through a Kedro session, as `kedro run` would."""

import json

import pandas as pd
import pytest
from kedro.framework.session import KedroSession
from kedro.framework.startup import bootstrap_project

from humpback.hooks import MissingRawDataError
from humpback.params import ParameterError
from tests.conftest import REPO_ROOT


def run(project, pipeline: str, env: str = "test", runtime_params: dict | None = None):
    bootstrap_project(project)
    with KedroSession.create(project_path=project, env=env, runtime_params=runtime_params) as session:
        return session.run(pipeline_names=[pipeline])


def test_ingestion_writes_seed_pairs_documents_and_funnel(kedro_project):
    run(kedro_project, "ingestion")

    seed = pd.read_parquet(kedro_project / "data/03_primary/seed_pairs.parquet")
    web = pd.read_parquet(kedro_project / "data/03_primary/web_documents.parquet")
    funnel = pd.read_csv(kedro_project / "data/08_reporting/ingestion_funnel.csv")
    assert len(seed) == 40  # conf/test caps the seed
    assert 0 < len(web) < 200  # conf/test takes the first 200 documents
    assert set(funnel["source"]) == {"oasst1", "c4"}
    c4 = funnel[funnel["source"] == "c4"]
    assert c4.iloc[0]["remaining"] == 200 and c4.iloc[-1]["remaining"] == len(web)


def test_missing_raw_file_names_the_offline_environment(kedro_project):
    (kedro_project / "data/01_raw/c4_en_documents.parquet").unlink()
    with pytest.raises(MissingRawDataError, match=r"(?s)c4_documents.*--env offline"):
        run(kedro_project, "ingestion")


def test_parameter_typo_stops_the_run_before_any_node(kedro_project):
    with pytest.raises(ParameterError, match="ingestion.web.min_charz"):
        run(kedro_project, "ingestion", runtime_params={"ingestion": {"web": {"min_charz": 10}}})
    assert not (kedro_project / "data/03_primary/seed_pairs.parquet").exists()


def test_iteration1_then_iteration2_end_to_end(kedro_project, tiny_raw_model_dir):
    # a template-less base model, as Llama-3.2-3B or Gemma 3 come; it also stands in for the aligned judge
    tiny = {"source": "local", "name_or_path": str(tiny_raw_model_dir), "dtype": "float32"}
    tiny_base = {"base_model": tiny, "aligned_model": tiny}
    run(kedro_project, "iteration1", runtime_params=tiny_base)

    data = kedro_project / "data"
    base = json.loads((data / "06_models/base_model/humpback.json").read_text())
    assert base["prompt_format"] == "project" and (data / "06_models/base_model/chat_template.jinja").is_file()
    candidates = pd.read_parquet(data / "03_primary/candidates.parquet")
    web = pd.read_parquet(data / "03_primary/web_documents.parquet")
    assert candidates["doc_id"].tolist() == web["doc_id"].tolist() and candidates["request_like"].dtype == bool
    scored = pd.read_parquet(data / "07_model_output/iteration1_scored_candidates.parquet")
    rated = pd.read_parquet(data / "03_primary/rated_candidates.parquet")
    assert len(scored) == len(rated) == (candidates["status"] == "ok").sum()
    training = pd.read_parquet(data / "05_model_input/iteration1_training_pairs.parquet")
    curated = pd.read_parquet(data / "07_model_output/iteration1_curated_pairs.parquet")
    assert (training["source"] == "augmented").sum() == len(curated) > 0  # conf/test keeps the top half
    for model in ("base_model", "backward_model", "seed_model", "m1"):
        assert (data / "06_models" / model / "model.safetensors").is_file(), model
    summary = json.loads((data / "08_reporting/m1_training_summary.json").read_text())
    assert summary["composition"] == {"seed": 40 - summary["heldout_examples"], "augmented": len(curated)}
    funnel = pd.read_csv(data / "08_reporting/iteration1_curation_funnel.csv").set_index("stage")
    assert funnel.loc["documents", "count"] == len(web) and funnel.loc["kept", "count"] == len(curated)
    assert (data / "08_reporting/iteration1_score_histogram.json").is_file()

    candidates_written = (data / "03_primary/candidates.parquet").stat().st_mtime_ns
    run(kedro_project, "iteration2", runtime_params=tiny_base)
    assert (data / "03_primary/candidates.parquet").stat().st_mtime_ns == candidates_written  # not redone
    rescored = pd.read_parquet(data / "07_model_output/iteration2_scored_candidates.parquet")
    assert rescored["doc_id"].tolist() == scored["doc_id"].tolist() and (rescored["rater"] == "m1").all()
    assert (data / "06_models/m2/model.safetensors").is_file()
    assert (data / "03_primary/iteration2_rated_candidates.parquet").is_file()  # M1's turn to rewrite (off here)

    # the notebook reads every report through the catalog
    notebook = json.loads((REPO_ROOT / "notebooks/curation_report.ipynb").read_text())
    namespace: dict = {}
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            exec("".join(cell["source"]).replace('ENV = "offline"', 'ENV = "test"'), namespace)
    assert namespace["scored"]["doc_id"].tolist() == scored["doc_id"].tolist()

    # evaluation of base, M0 and M1 on held-out prompts, then M2, then the rewriting variants
    run(kedro_project, "evaluation", runtime_params=tiny_base)
    heldout = pd.read_parquet(data / "05_model_input/evaluation_heldout_pairs.parquet")
    seed = pd.read_parquet(data / "03_primary/seed_pairs.parquet")
    assert len(heldout) == 4 and not set(heldout["prompt_id"]) & set(seed["prompt_message_id"])
    models = pd.read_csv(data / "08_reporting/evaluation_models.csv")
    assert models["model"].tolist() == ["base", "m0", "m1"]
    assert (models["reference_nll"] > 0).all() and (models["reference_tokens"] > 0).all()
    wins = pd.read_csv(data / "08_reporting/evaluation_win_rates.csv")
    assert [tuple(r) for r in wins[["challenger", "reference"]].to_numpy()] == [("m1", "m0"), ("m1", "base")]
    assert ((wins["wins"] + wins["ties"] + wins["losses"]) == 4).all()
    assert ((wins["ci_low"] <= wins["win_rate"]) & (wins["win_rate"] <= wins["ci_high"])).all()
    judgements = pd.read_parquet(data / "07_model_output/evaluation/m1_vs_m0_judgements.parquet")
    assert judgements["prompt_id"].tolist() == heldout["prompt_id"].tolist()
    card = (data / "06_models/m1/README.md").read_text()
    assert "Win rate vs m0" in card and "base_model:" in card
    assert "Not evaluated yet" in (data / "06_models/backward_model/README.md").read_text()

    run(kedro_project, "evaluation_m2", runtime_params=tiny_base)
    assert pd.read_csv(data / "08_reporting/evaluation_m2_models.csv")["model"].tolist() == ["base", "m0", "m1", "m2"]

    run(kedro_project, "rewriting_variants", runtime_params=tiny_base)
    before = pd.read_parquet(data / "03_primary/m1_self_before_curation_rated_candidates.parquet")
    assert len(before) == len(rated) and (before["rewrite_status"] != "not_requested").all()
    after = pd.read_parquet(data / "07_model_output/m1_after_curation_curated_pairs.parquet")
    assert (after["rewrite_status"] != "not_requested").all()
    run(kedro_project, "evaluation_variants", runtime_params=tiny_base)
    variants = pd.read_csv(data / "08_reporting/evaluation_variants_models.csv").set_index("model")
    modes = variants.loc[["m1", "m1_self_before_curation", "m1_after_curation"], "rewriting_mode"]
    assert modes.tolist() == ["off", "self_before_curation", "after_curation"]
    assert len(pd.read_csv(data / "08_reporting/evaluation_variants_win_rates.csv")) == 3
