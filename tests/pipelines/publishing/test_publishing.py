"""Exports with dataset cards, and publishing them: the exact Hub calls, and one clear line offline."""

import json
import socket

import pandas as pd
import pytest
from huggingface_hub import DatasetCard

from humpback.datasets import CheckpointHandle
from humpback.pipelines.publishing import hub
from humpback.pipelines.publishing.hub import PublishError, publish_to_hub
from humpback.pipelines.publishing.nodes import export_candidates, export_curated_pairs
from tests.conftest import params

BACKWARD = CheckpointHandle(
    "backward",
    {
        "role": "backward",
        "base_model": "google/gemma-3-270m",
        "base_model_licence": "Gemma",
        "base_model_weights": "GGUF Q4_K_M (4-bit), dequantised to bfloat16",
        "weights_sha256": "ab12",
    },
)
FUNNEL = pd.DataFrame(
    {
        "source": ["c4", "c4", "oasst1"],
        "rule": ["input", "not_en", "input"],
        "dropped": [0, 1, 0],
        "remaining": [3, 2, 9],
    }
)


def test_a_dataset_card_carries_provenance_funnel_and_scores_and_the_hub_reads_it():
    candidates = pd.DataFrame(
        {
            "doc_id": ["a", "b"],
            "instruction": ["Why?", None],
            "response": ["Because.", "Text"],
            "status": ["ok", "echo"],
        }
    )
    data, text = export_candidates(candidates, FUNNEL, BACKWARD, params("augmentation"), params("ingestion.web"))
    card = DatasetCard(text)
    pd.testing.assert_frame_equal(data.drop(columns="messages"), candidates)  # the rows, and their messages
    assert card.data.license == ["apache-2.0", "odc-by"] and card.data.source_datasets == [
        "allenai/c4",
        "OpenAssistant/oasst1",
    ]
    assert (
        "| backward | google/gemma-3-270m | GGUF Q4_K_M (4-bit), dequantised to bfloat16 | Gemma | `ab12` |"
        in card.text
    )
    assert "| not_en | 1 | 2 |" in card.text and "| augmentation: echo | 1 |" in card.text
    assert '"min_confidence": 0.9' in card.text  # the parameters that shaped the data

    scored = pd.DataFrame({"score": pd.array([5, 5, 1, None], dtype="Int64")})
    provenance = {"rater": "seed", "rater_weights_sha256": "cd34", "curator_check": {"passed": False, "reason": "AUC"}}
    funnel = pd.DataFrame({"stage": ["rated", "kept"], "count": [3, 2]})
    _, text = export_curated_pairs("iteration1_curated_pairs", candidates.head(1), funnel, scored, provenance, BACKWARD)
    curated = DatasetCard(text)
    assert "| 5 | 2 |" in curated.text and "| 1 | 1 |" in curated.text  # score histogram
    assert (
        "| seed | google/gemma-3-270m | GGUF Q4_K_M (4-bit), dequantised to bfloat16 | Gemma | `cd34` |" in curated.text
    )
    assert '"curator_check_passed": false' in curated.text


@pytest.fixture
def folders(tmp_path):
    export = tmp_path / "09_export/iteration1_curated_pairs"
    (export / "data").mkdir(parents=True)
    (export / "README.md").write_text("---\nlicense: odc-by\n---\n# card\n")
    model = tmp_path / "06_models/m1"
    model.mkdir(parents=True)
    (model / "README.md").write_text("---\nlibrary_name: transformers\n---\n# M1\n")
    return params(
        "publish",
        datasets={"iteration1_curated_pairs": "you/curated"},
        models={"m1": "you/m1"},
        export_dir=str(tmp_path / "09_export"),
        models_dir=str(tmp_path / "06_models"),
    )


class RecordingApi:
    calls: list = []

    def __init__(self, **kwargs):
        RecordingApi.calls.append(("HfApi", kwargs))

    def create_repo(self, repo_id, **kwargs):
        RecordingApi.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        RecordingApi.calls.append(("upload_folder", kwargs))
        return f"https://hub.example/{kwargs['repo_id']}/commit/1"


def test_publishing_makes_private_repositories_and_uploads_each_folder(folders, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setattr(hub, "HfApi", RecordingApi)
    RecordingApi.calls = []
    receipt = publish_to_hub(folders)
    export, model = folders.export_dir + "/iteration1_curated_pairs", folders.models_dir + "/m1"
    assert RecordingApi.calls == [
        ("HfApi", {"endpoint": "https://huggingface.co", "token": "hf_secret"}),
        ("create_repo", "you/curated", {"repo_type": "dataset", "private": True, "exist_ok": True}),
        (
            "upload_folder",
            {
                "folder_path": export,
                "repo_id": "you/curated",
                "repo_type": "dataset",
                "commit_message": "humpback: iteration1_curated_pairs",
            },
        ),
        ("create_repo", "you/m1", {"repo_type": "model", "private": True, "exist_ok": True}),
        (
            "upload_folder",
            {"folder_path": model, "repo_id": "you/m1", "repo_type": "model", "commit_message": "humpback: m1"},
        ),
    ]
    assert [r["commit"] for r in receipt["published"]] == [
        "https://hub.example/you/curated/commit/1",
        "https://hub.example/you/m1/commit/1",
    ]


def test_publishing_is_off_unless_configured_and_needs_a_token(folders, monkeypatch):
    with pytest.raises(PublishError, match="publishing is off"):
        publish_to_hub(params("publish"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(folders.export_dir) + "/no-token")
    with pytest.raises(PublishError, match="set the environment variable HF_TOKEN .* or run `hf auth login`"):
        publish_to_hub(folders)
    missing = folders.model_copy(update={"models": {"m2": "you/m2"}})
    with pytest.raises(PublishError, match="m2 has no README.md"):
        publish_to_hub(missing)


def test_offline_publishing_fails_with_one_clear_line(folders, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there: the Hub is unreachable
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    unreachable = folders.model_copy(update={"endpoint": f"http://127.0.0.1:{port}"})
    with pytest.raises(PublishError) as raised:
        publish_to_hub(unreachable)
    message = str(raised.value)
    assert message.startswith(
        f"could not publish {folders.export_dir}/iteration1_curated_pairs to http://127.0.0.1:{port}"
    )
    assert "\n" not in message and raised.value.__cause__ is None


def test_the_token_of_hf_auth_login_is_used_when_the_variable_is_unset(folders, monkeypatch, tmp_path):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (tmp_path / "token").write_text("hf_from_login")  # where `hf auth login` stores it
    monkeypatch.setattr("huggingface_hub.constants.HF_TOKEN_PATH", str(tmp_path / "token"))
    seen = {}

    class Api:
        def __init__(self, endpoint, token):
            seen["token"] = token

        def create_repo(self, *args, **kwargs):
            pass

        def upload_folder(self, **kwargs):
            return "https://hub.example/commit/1"

    monkeypatch.setattr("humpback.pipelines.publishing.hub.HfApi", Api)
    publish_to_hub(folders)
    assert seen["token"] == "hf_from_login"


def test_exports_carry_a_messages_column_and_the_run_publishes_its_parameters():
    from humpback.pipelines.publishing.nodes import configuration_snapshot, with_messages

    pairs = pd.DataFrame({"instruction": ["How do tides work?", None], "response": ["The moon pulls.", "A page."]})
    exported = with_messages(pairs)
    assert exported["messages"].iloc[0] == [
        {"role": "user", "content": "How do tides work?"},
        {"role": "assistant", "content": "The moon pulls."},
    ]
    assert exported["messages"].iloc[1] is None  # a candidate without an instruction
    assert list(exported.columns[:2]) == ["instruction", "response"]  # beside the existing columns
    # Kedro hands the run's parameters as validated blocks: they are written as JSON
    snapshot = configuration_snapshot({"curation": params("curation"), "seed": 42, "_anchor": {}})
    assert snapshot["parameters"]["curation"]["scorer"] == params("curation").scorer and snapshot["humpback"]
    assert snapshot["parameters"]["seed"] == 42 and "_anchor" not in snapshot["parameters"]
    json.dumps(snapshot)
