import json

import pytest
import torch
from kedro.io.core import DatasetError
from transformers import AutoModelForCausalLM, AutoTokenizer

from humpback.datasets import CheckpointHandle, ModelArtifacts, ModelCheckpointDataset


def test_round_trip_saves_safetensors_and_loads_a_handle(tiny_model_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    dataset = ModelCheckpointDataset(path=str(tmp_path / "ckpt"))
    assert not dataset.exists()

    dataset.save(ModelArtifacts(model, tokenizer, metadata={"role": "seed"}, files={"README.md": "# card"}))
    handle = dataset.load()

    assert isinstance(handle, CheckpointHandle) and dataset.exists()
    folder = tmp_path / "ckpt"
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.bin"))
    assert (folder / "README.md").read_text() == "# card"
    assert handle.metadata["role"] == "seed"
    assert handle.metadata["num_parameters"] == model.num_parameters()
    assert json.loads((folder / "humpback.json").read_text()) == handle.metadata
    assert not (tmp_path / "ckpt.partial").exists()

    reloaded = AutoModelForCausalLM.from_pretrained(handle.path)
    for (name, before), (_, after) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert torch.equal(before, after), name
    assert AutoTokenizer.from_pretrained(handle.path).chat_template == tokenizer.chat_template


def test_save_replaces_an_older_checkpoint(tiny_model_dir, tmp_path):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    dataset = ModelCheckpointDataset(path=str(tmp_path / "ckpt"))
    dataset.save(ModelArtifacts(model, tokenizer, files={"stale.txt": "old"}))
    dataset.save(ModelArtifacts(model, tokenizer, metadata={"generation": 2}))
    assert not (tmp_path / "ckpt" / "stale.txt").exists()
    assert dataset.load().metadata["generation"] == 2


def test_clear_errors(tmp_path):
    dataset = ModelCheckpointDataset(path=str(tmp_path / "nothing"))
    with pytest.raises(DatasetError, match="no Hugging Face checkpoint"):
        dataset.load()
    with pytest.raises(DatasetError, match="saves ModelArtifacts"):
        dataset.save({"model": None})
