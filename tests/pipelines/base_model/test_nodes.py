from transformers import AutoModelForCausalLM

from humpback.datasets import ModelCheckpointDataset
from humpback.pipelines.base_model.nodes import materialise_base_model


def test_embedded_gguf_becomes_a_dense_safetensors_checkpoint(tmp_path):
    artifacts = materialise_base_model({"source": "embedded", "dtype": "bfloat16"})

    assert getattr(artifacts.model, "hf_quantizer", None) is None  # trainable and saveable
    assert artifacts.metadata["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert artifacts.tokenizer.chat_template  # ChatML template travels with the checkpoint
    dataset = ModelCheckpointDataset(path=str(tmp_path / "base"))
    dataset.save(artifacts)
    handle = dataset.load()
    assert 130e6 < handle.metadata["num_parameters"] < 140e6 and handle.metadata["dtype"] == "bfloat16"
    reloaded = AutoModelForCausalLM.from_pretrained(handle.path)
    assert reloaded.config.model_type == "llama"
