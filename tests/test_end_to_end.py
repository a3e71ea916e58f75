"""Every pipeline run end to end on the tiny template-less model, one test per pipeline.

The runs build on each other as they do for a user (iteration 1, then iteration 2, evaluation, …)
in one project folder; each test asks for the runs it needs, so any one of them can be selected.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from datasets import load_dataset
from huggingface_hub import DatasetCard
from trl.data_utils import is_conversational

from tests.conftest import REPO_ROOT, load_params, make_project, report
from tests.test_run import run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory, shared_data, tiny_raw_model_dir):
    """A project folder, and the runtime parameters that put the tiny model in the base and aligned roles."""
    folder = make_project(tmp_path_factory.mktemp("project"), shared_data)
    tiny = {"source": "local", "name_or_path": str(tiny_raw_model_dir), "dtype": "float32"}
    return folder, {"base_model": tiny, "aligned_model": tiny}


@pytest.fixture(scope="module")
def iteration1(project):
    folder, tiny = project
    run(folder, "iteration1", runtime_params=tiny)
    return folder / "data"


@pytest.fixture(scope="module")
def iteration2(project, iteration1):
    folder, tiny = project
    written = (iteration1 / "03_primary/candidates.parquet").stat().st_mtime_ns
    run(folder, "iteration2", runtime_params=tiny)
    assert (iteration1 / "03_primary/candidates.parquet").stat().st_mtime_ns == written  # iteration 1 not redone
    return iteration1


@pytest.fixture(scope="module")
def evaluation(project, iteration1):
    folder, tiny = project
    run(folder, "evaluation", runtime_params=tiny)
    return iteration1


@pytest.fixture(scope="module")
def variants(project, evaluation):
    folder, tiny = project
    run(folder, "rewriting_variants", runtime_params=tiny)
    run(folder, "evaluation_variants", runtime_params=tiny)
    return evaluation


def test_iteration1_makes_candidates_curated_pairs_and_four_models(iteration1):
    data = iteration1
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
    summary = json.loads(report(data, "m1_training_summary.json").read_text())
    assert summary["composition"] == {"seed": 40 - summary["heldout_examples"], "augmented": len(curated)}
    funnel = pd.read_csv(report(data, "iteration1_curation_funnel.csv")).set_index("stage")
    assert funnel.loc["documents", "count"] == len(web) and funnel.loc["kept", "count"] == len(curated)
    assert report(data, "iteration1_score_histogram.json").is_file()
    # each model-made judgement is checked against known answers, pass or fail (a random tiny model fails)
    backward = json.loads(report(data, "augmentation_backward_check.json").read_text())
    curator = json.loads(report(data, "iteration1_curator_check.json").read_text())
    assert backward["heldout_pairs"] == 4 and isinstance(backward["passed"], bool)
    assert 0 <= backward["discrimination_share"] <= 1
    # 4 held-out prompts × 5 answers, 8 ranked prompts × 2 replies, up to 8 of the run's candidates, and
    # the project's hand-labelled pairs whose documents are among this run's (labels/)
    hand = next(row for row in curator["by_scorer"] if row["control"] == "hand_labels")
    labelled = pd.read_csv(data.parent / "labels/candidate_labels.csv")
    assert 0 < hand["items"] <= labelled["doc_id"].isin(web["doc_id"]).sum() and 0 <= hand["auc"] <= 1
    assert 36 <= curator["control_pairs"] - hand["items"] <= 44 and 0 <= curator["auc_vs_mismatched"] <= 1
    by_scorer = pd.read_csv(report(data, "iteration1_curator_controls_by_scorer.csv"))
    assert set(by_scorer["scorer"]) == {"option_probabilities", "pmi", "implicit_reward", "combined"}
    assert set(by_scorer["control"]) == {
        "mismatched",
        "web",
        "ranked",
        "truncated",
        "boilerplate",
        "form",
        "hand_labels",
    }
    assert (
        "| curator (seed) | relevance: own human answer above another prompt's (paired AUC) |"
        in (data / "06_models/m1/README.md").read_text()
    )
    assert "| backward model | echo share of outputs |" in (data / "06_models/backward_model/README.md").read_text()
    # Hub-ready exports: Parquet beside a dataset card that huggingface_hub reads back
    for name, rows in (("candidates", len(candidates)), ("iteration1_curated_pairs", len(curated))):
        export = data / "09_export" / name
        assert len(pd.read_parquet(export / "data/train-00000-of-00001.parquet")) == rows
        card = DatasetCard.load(export / "README.md")
        assert card.data.configs[0]["data_files"][0]["path"] == "data/train-00000-of-00001.parquet"
        assert "## Funnel" in card.text and "weights sha256" in card.text
    assert "## Score histogram" in (data / "09_export/iteration1_curated_pairs/README.md").read_text()
    # M1's examples as TRL reads them: conversational prompt/completion, the training split only
    sft = load_dataset("parquet", data_files=str(data / "09_export/iteration1_sft_examples/data/*.parquet"))["train"]
    examples = pd.read_parquet(data / "05_model_input/m1_sft_examples.parquet")
    assert len(sft) == (examples["split"] == "train").sum() and is_conversational(sft[0])
    assert sft[0]["completion"][0]["role"] == "assistant" and sft[0]["prompt"][-1]["role"] == "user"
    funnel_rules = pd.read_csv(report(data, "ingestion_funnel.csv"))["rule"].tolist()
    assert "not_en" in funnel_rules
    sft_rules = pd.read_csv(report(data, "m1_sft_funnel.csv"))["rule"].tolist()
    assert "overlaps_evaluation_prompt" in sft_rules
    health = pd.read_csv(report(data, "iteration1_method_health.csv"))
    assert (
        set(health["model"]) == {"backward model", "backward model (base)", "curator (seed)", "curator (base)"}
        and report(data, "iteration1_method_health.json").is_file()
    )
    # conf/test: the base model rates the controls too, each read beside the seed model's figure
    curator_check = json.loads(report(data, "iteration1_curator_check.json").read_text())
    assert curator_check["base_rater"] and all(
        "base_auc" in r
        for r in curator_check["by_scorer"]
        if r["scorer"] == curator_check["scorer"] and r["control"] != "hand_labels"
    )
    assert "base_discrimination_share" in backward


def test_the_study_trains_one_model_per_arm_and_says_whether_curation_beat_random(project, iteration1):
    """`kedro run --pipeline=study` after iteration1: the pool scored by every forward-pass scorer,
    seven arms of conf/test's 6 pairs each, trained and scored, and the table with its verdict."""
    folder, tiny = project
    # as the study is run (docs/evaluation.md): every pair trains. The IFD floor may leave the tiny
    # model's pmi and combined arms with fewer pairs than m1 would hold out.
    run(folder, "study", runtime_params={**tiny, "m1": {"training": {"heldout_examples": 0}}})
    data = iteration1
    pool = pd.read_parquet(data / "07_model_output/study/pool.parquet")
    rated = pd.read_parquet(data / "03_primary/rated_candidates.parquet")
    assert pool.groupby("scorer").size().to_dict() == dict.fromkeys(
        ["option_probabilities", "pmi", "implicit_reward", "combined"], len(rated)
    )
    results = pd.read_csv(report(data, "study_results.csv"))
    assert results["arm"].tolist() == [
        "curated_option_probabilities",
        "curated_pmi",
        "curated_implicit_reward",
        "curated_combined",
        "random_a",
        "random_b",
        "seed",
    ]
    assert results["preference_accuracy"].between(0, 1).all() and results["reference_content_nll"].gt(0).all()
    assert results["preference_margin"].notna().all()  # every arm scored both replies of its ranked prompts
    for arm in results["arm"]:
        summary = json.loads(report(data, f"study_{arm}_training_summary.json").read_text())
        assert summary["steps"] == 2  # conf/test: every arm trains as M1 does
    verdict = json.loads(report(data, "study_summary.json").read_text())
    assert verdict["arm_size"] == 6 and isinstance(verdict["curation_beat_random"], bool)
    assert set(verdict["detectable_difference"]) == {"reference_content_nll", "preference", "preference_margin"}


def test_the_notebook_runs_in_the_kedro_jupyter_kernel(project, evaluation, tmp_path, monkeypatch):
    """`kedro jupyter setup` makes the project's kernel; every cell of the notebook runs in it on this
    run's outputs (the environment set to the tests' own)."""
    import nbclient
    import nbformat

    folder, _ = project
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter"))  # the kernel spec stays out of $HOME
    setup = subprocess.run(
        [str(Path(sys.executable).parent / "kedro"), "jupyter", "setup"],
        cwd=folder,
        env={**os.environ, "KEDRO_DISABLE_TELEMETRY": "true"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert setup.returncode == 0, setup.stderr[-2000:]
    notebook = nbformat.read(REPO_ROOT / "notebooks/run_report.ipynb", as_version=4)
    assert notebook.metadata.kernelspec.name == "kedro_humpback"
    assert not any("--env" in cell.source for cell in notebook.cells)  # the environment is the user's
    monkeypatch.setenv("KEDRO_ENV", "test")  # as `KEDRO_ENV=test kedro jupyter notebook` starts the kernel

    nbclient.NotebookClient(notebook, timeout=300, resources={"metadata": {"path": str(folder)}}).execute()

    text = "\n".join(
        str(output.get("data", output.get("text", "")))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )
    scored = pd.read_parquet(evaluation / "07_model_output/iteration1_scored_candidates.parquet")
    assert "score_status" in text and str(len(scored)) in text
    assert "no evaluation yet" not in text and "m1_random" in text  # the evaluation table was shown
    assert "Traceback" not in text


def test_iteration2_rescores_with_m1_and_trains_m2(iteration2):
    data = iteration2
    scored = pd.read_parquet(data / "07_model_output/iteration1_scored_candidates.parquet")
    rescored = pd.read_parquet(data / "07_model_output/iteration2_scored_candidates.parquet")
    assert rescored["doc_id"].tolist() == scored["doc_id"].tolist() and (rescored["rater"] == "m1").all()
    assert (data / "06_models/m2/model.safetensors").is_file()
    assert (data / "03_primary/iteration2_rated_candidates.parquet").is_file()  # M1's turn to rewrite (off here)


def test_evaluation_compares_base_m0_and_m1_on_held_out_prompts(evaluation):
    data = evaluation
    # curation's control, trained by evaluation: as many candidates as curation kept, drawn at random
    # from those it rated, the same seed pairs
    curated = pd.read_parquet(data / "07_model_output/iteration1_curated_pairs.parquet")
    scored = pd.read_parquet(data / "07_model_output/iteration1_scored_candidates.parquet")
    drawn = pd.read_parquet(data / "07_model_output/m1_random_selected_pairs.parquet")
    assert len(drawn) == len(curated) and set(drawn["doc_id"]) <= set(scored["doc_id"])
    control = json.loads(report(data, "m1_random_training_summary.json").read_text())
    assert control["composition"] == json.loads(report(data, "m1_training_summary.json").read_text())["composition"]
    heldout = pd.read_parquet(data / "05_model_input/heldout_pairs.parquet")
    seed = pd.read_parquet(data / "03_primary/seed_pairs.parquet")
    assert len(heldout) == 8 and not set(heldout["prompt_id"]) & set(seed["prompt_message_id"])
    assert heldout["part"].value_counts().to_dict() == {"selection": 4, "report": 4}  # 4 in each part
    models = pd.read_csv(report(data, "evaluation_models.csv"))
    assert models["model"].tolist() == ["base", "m0", "m1", "m1_random"]
    assert (models["reference_nll"] > 0).all() and (models["reference_tokens"] > 0).all()
    wins = pd.read_csv(report(data, "evaluation_win_rates.csv"))
    assert [tuple(r) for r in wins[["challenger", "reference"]].to_numpy()] == [
        ("m1", "m0"),
        ("m1", "base"),
        ("m1", "m1_random"),
    ]
    assert ((wins["wins"] + wins["ties"] + wins["losses"]) == 4).all()
    # win rates only from a judge that passed its controls (the tiny random judge's outcome is its own)
    check = json.loads(report(data, "evaluation_judge_check.json").read_text())
    assert check["control_prompts"] == 4 and 0 <= check["control_accuracy"] <= 1
    assert (wins["judge_passed"] == check["passed"]).all()
    assert (wins["win_rate"].isna() == (not check["passed"])).all()
    assert wins["win_rate_status"].str.startswith("ok" if check["passed"] else "inconclusive").all()
    assert (
        wins["nll_difference"].notna().all() and (wins["nll_difference_ci_low"] <= wins["nll_difference_ci_high"]).all()
    )
    judge_health = pd.read_csv(report(data, "evaluation_method_health.csv"))
    assert judge_health["model"].str.startswith("judge").sum() == 3
    assert set(judge_health["model"]) - {m for m in judge_health["model"] if m.startswith("judge")} == {
        "web-style detector",
        "on-topic opener",
    }
    # the judge-free style of every model's answers, each with its interval
    for measure in ("web_style", "on_topic_opening", "stop_rate"):
        assert (models[f"{measure}_ci_low"] <= models[measure]).all() and models[measure].notna().all()
    judgements = pd.read_parquet(data / "07_model_output/evaluation/m1_vs_m0_judgements.parquet")
    assert judgements["prompt_id"].tolist() == heldout.loc[heldout["part"] == "report", "prompt_id"].tolist()
    card = (data / "06_models/m1/README.md").read_text()
    assert "Win rate vs m0" in card and "Win rate vs m1_random" in card and "| judge (" in card
    assert "# M1 (random selection)" in (data / "06_models/m1_random/README.md").read_text()
    assert "Not evaluated yet" in (data / "06_models/backward_model/README.md").read_text()


def test_evaluation_m2_adds_m2_to_the_table(project, iteration2, evaluation):
    folder, tiny = project
    run(folder, "evaluation_m2", runtime_params=tiny)
    models = pd.read_csv(report(evaluation, "evaluation_m2_models.csv"))
    assert models["model"].tolist() == ["base", "m0", "m1", "m2"]


def test_rewriting_variants_train_one_m1_per_mode_and_are_compared(variants):
    data = variants
    rated = pd.read_parquet(data / "03_primary/rated_candidates.parquet")
    before = pd.read_parquet(data / "03_primary/m1_self_before_curation_rated_candidates.parquet")
    assert len(before) == len(rated) and (before["rewrite_status"] != "not_requested").all()
    after = pd.read_parquet(data / "07_model_output/m1_after_curation_curated_pairs.parquet")
    assert (after["rewrite_status"] != "not_requested").all()
    table = pd.read_csv(report(data, "evaluation_variants_models.csv")).set_index("model")
    modes = table.loc[["m1", "m1_self_before_curation", "m1_after_curation"], "rewriting_mode"]
    assert modes.tolist() == ["off", "self_before_curation", "after_curation"]
    assert len(pd.read_csv(report(data, "evaluation_variants_win_rates.csv"))) == 3


def _without(values: dict, defined: dict) -> dict:
    """``values`` less every leaf that ``defined`` sets (nested blocks compared key by key)."""
    kept = {}
    for key, value in values.items():
        if key not in defined:
            kept[key] = value
        elif isinstance(value, dict) and isinstance(defined[key], dict):
            rest = _without(value, defined[key])
            if rest:
                kept[key] = rest
    return kept


def test_the_readmes_own_data_environment_runs_iteration1_as_it_stands(
    tmp_path, oasst1_messages, c4_documents, tiny_raw_model_dir
):
    """conf/own_data, the README's "Your own data" example, in a fresh project that holds conf/base,
    that folder and the two files it names, nothing else: a `messages` seed file and a JSON Lines
    corpus whose text column has another name, all the way to M1. Only the model and the sizes come
    from the command line (the test environment's, tiny); every value the example sets is its own."""
    from humpback.data.oasst import select_seed_pairs

    folder = tmp_path / "project"
    for part in ("base", "own_data"):
        shutil.copytree(REPO_ROOT / "conf" / part, folder / "conf" / part)
    (folder / "conf" / "local").mkdir()
    shutil.copy(REPO_ROOT / "pyproject.toml", folder / "pyproject.toml")
    shutil.copytree(REPO_ROOT / "labels", folder / "labels")
    (folder / "src").mkdir()
    raw = folder / "data" / "01_raw"
    raw.mkdir(parents=True)
    pairs, _ = select_seed_pairs(oasst1_messages, ["en"], 0, 20_000, True, None, 42)
    chats = [
        [{"role": "user", "content": x}, {"role": "assistant", "content": y}]
        for x, y in zip(pairs["instruction"], pairs["response"])
    ]
    pd.DataFrame({"messages": chats}).to_json(raw / "my_seed.jsonl", orient="records", lines=True)
    c4_documents.head(200).rename(columns={"text": "body"}).to_json(
        raw / "my_corpus.jsonl", orient="records", lines=True
    )
    example = yaml.safe_load((REPO_ROOT / "conf/own_data/parameters.yml").read_text())
    tiny = {"source": "local", "name_or_path": str(tiny_raw_model_dir), "dtype": "float32"}
    sizes = {k: v for k, v in load_params("test").items() if not k.startswith("_")}
    overrides = _without(sizes, example) | {"base_model": tiny, "aligned_model": tiny}

    # to M1 only: the random-selection control, the reports and exports are the same as with oasst1
    run(
        folder,
        "iteration1",
        env="own_data",
        runtime_params=overrides,
        to_nodes=["m1.train_model", "combine_ingestion_funnels"],
    )

    data = folder / "data"
    seed = pd.read_parquet(data / "03_primary/seed_pairs.parquet")
    heldout = pd.read_parquet(data / "05_model_input/heldout_pairs.parquet")
    # the example takes every pair outside the held-out fifth (max_pairs: null), not the suite's 40
    assert len(seed) > 0.7 * len(pairs) and seed["instruction"].isin(set(pairs["instruction"])).all()
    assert len(heldout) and not set(heldout["instruction"]) & set(seed["instruction"])  # a fifth kept out
    funnel = pd.read_csv(report(data, "ingestion_funnel.csv"))
    assert set(funnel["source"]) >= {"seed_messages", "c4"}
    candidates = pd.read_parquet(data / "03_primary/candidates.parquet")
    assert len(candidates) > 0 and (data / "06_models/m1/model.safetensors").is_file()
