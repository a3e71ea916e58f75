import json

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from humpback.datasets import ModelCheckpointDataset
from humpback.pipelines.base_model.materialise import PromptFormatError
from humpback.pipelines.base_model.nodes import materialise_aligned_model, materialise_base_model
from humpback.prompts import BASE_CHAT_TEMPLATE
from tests.conftest import params

CHAT = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]


@pytest.mark.slow
def test_aligned_model_keeps_its_own_template_and_stops_on_its_end_of_turn(tmp_path, monkeypatch):
    import gguf

    parsed = []
    parse = gguf.GGUFReader
    monkeypatch.setattr(gguf, "GGUFReader", lambda path, mode="r": parsed.append(path) or parse(path, mode))
    artifacts = materialise_aligned_model(params("aligned_model"))

    assert len(parsed) == 1  # tokenizer config, model config and weights read from one parse

    assert getattr(artifacts.model, "hf_quantizer", None) is None  # trainable and saveable
    assert artifacts.metadata["model_id"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert artifacts.metadata["prompt_format"] == "own" and artifacts.metadata["answer_end_tokens"] == ["<|im_end|>"]
    assert "<|im_start|>assistant" in artifacts.tokenizer.apply_chat_template(CHAT, tokenize=False)  # ChatML kept
    dataset = ModelCheckpointDataset(path=str(tmp_path / "aligned"))
    dataset.save(artifacts)
    handle = dataset.load()
    assert 130e6 < handle.metadata["num_parameters"] < 140e6 and handle.metadata["dtype"] == "bfloat16"
    assert AutoModelForCausalLM.from_pretrained(handle.path).config.model_type == "llama"


def test_a_model_without_template_gets_the_project_format_and_its_eos_as_stop_token(tiny_raw_model_dir, tmp_path):
    artifacts = materialise_base_model(
        params("base_model", source="local", name_or_path=str(tiny_raw_model_dir), dtype="float32")
    )
    assert artifacts.metadata["prompt_format"] == "project"
    ModelCheckpointDataset(path=str(tmp_path / "base")).save(artifacts)

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "base")
    assert tokenizer.chat_template == BASE_CHAT_TEMPLATE  # travels with the checkpoint
    rendered = tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert rendered == f"{tokenizer.bos_token}### User:\nName a colour.\n\n### Assistant:\nBlue.{tokenizer.eos_token}"
    assert GenerationConfig.from_pretrained(tmp_path / "base").eos_token_id == [tokenizer.eos_token_id]
    assert json.loads((tmp_path / "base/humpback.json").read_text())["answer_end_tokens"] == [tokenizer.eos_token]


def test_a_template_that_never_ends_an_answer_is_refused(tiny_raw_model_dir):
    no_end = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    with pytest.raises(PromptFormatError, match="no special token"):
        materialise_base_model(
            params("base_model", source="local", name_or_path=str(tiny_raw_model_dir), chat_template=no_end)
        )


@pytest.mark.slow
def test_embedded_gemma_is_a_base_model_given_the_project_format(tmp_path):
    artifacts = materialise_base_model(params("base_model"))

    assert artifacts.metadata["model_id"] == "google/gemma-3-270m" and "Gemma" in artifacts.metadata["licence"]
    assert artifacts.metadata["prompt_format"] == "project"  # pretrained only: no template of its own
    assert artifacts.metadata["answer_end_tokens"] == ["<eos>"]  # a token the base model already knows
    assert artifacts.model.config.model_type == "gemma3_text" and 260e6 < artifacts.model.num_parameters() < 275e6


def test_a_turn_end_token_marked_special_only_among_added_tokens_is_the_stop_token(tmp_path, c4_documents):
    """Llama 3's tokenizer names <|eot_id|> nowhere but in added_tokens_decoder (special: true): a
    template ending turns with it must still give it as the stop token."""
    from tests.standins import EOT, LLAMA31_CHAT_TEMPLATE, build_llama3_standins

    base, _ = build_llama3_standins(tmp_path / "standins", c4_documents["text"].head(100).tolist())
    tokenizer = AutoTokenizer.from_pretrained(base)
    assert EOT not in tokenizer.all_special_tokens  # only bos and eos are named
    artifacts = materialise_base_model(
        params("base_model", source="local", name_or_path=str(base), chat_template=LLAMA31_CHAT_TEMPLATE)
    )
    assert artifacts.metadata["answer_end_tokens"] == [EOT]
    assert artifacts.metadata["stop_token_ids"][0] == tokenizer.convert_tokens_to_ids(EOT)


def test_the_weights_say_how_they_were_stored(tiny_raw_model_dir, tmp_path):
    """A dequantised GGUF is not the published model: the metadata, and every card, say so."""
    from humpback.pipelines.base_model.nodes import weights_description
    from humpback.reports.model_card import render_model_card

    embedded = params("base_model")
    assert weights_description(embedded) == "GGUF Q4_K_M (4-bit), dequantised to bfloat16"
    assert weights_description(params("aligned_model")) == "GGUF Q4_1 (4-bit), dequantised to bfloat16"
    local = params("base_model", source="local", name_or_path=str(tiny_raw_model_dir), dtype="float32")
    assert weights_description(local) == "as published, in float32"
    assert materialise_base_model(local).metadata["weights"] == "as published, in float32"

    card = render_model_card(
        {"role": "m1", "base_model": "google/gemma-3-270m", "base_model_weights": weights_description(embedded)}
    )
    assert "`google/gemma-3-270m` (weights: GGUF Q4_K_M (4-bit), dequantised to bfloat16)" in card


#: Llama 3.1 Instruct's date header, as its template writes it: today's date unless one is given
LLAMA31_DATED_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if not date_string is defined %}{%- if strftime_now is defined %}"
    '{%- set date_string = strftime_now("%d %b %Y") %}{%- else %}{%- set date_string = "26 Jul 2024" %}'
    "{%- endif %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\nToday Date: ' + date_string + '<|eot_id|>' }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] + eos_token }}"
    "{%- endfor %}"
)


def test_a_template_that_stamps_todays_date_is_given_the_pinned_date(tiny_raw_model_dir, tmp_path):
    """Prompts rendered with a Llama 3.x Instruct template change every day unless the date is pinned:
    the judge's cache keys and answers with them."""
    import datetime

    source = params("aligned_model", source="local", name_or_path=str(tiny_raw_model_dir), dtype="float32")
    source = source.model_copy(update={"chat_template": LLAMA31_DATED_TEMPLATE, "chat_template_date": "1 Mar 2025"})
    artifacts = materialise_aligned_model(source)
    ModelCheckpointDataset(path=str(tmp_path / "aligned")).save(artifacts)
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "aligned")
    today = datetime.datetime.now().strftime("%d %b %Y")

    pinned = tokenizer.apply_chat_template(CHAT, tokenize=False)
    assert "Today Date: 1 Mar 2025" in pinned and today not in pinned
    assert artifacts.metadata["chat_template_date"] == "1 Mar 2025"
    tokenizer.chat_template = LLAMA31_DATED_TEMPLATE  # the stand-in as published stamps today's date
    assert f"Today Date: {today}" in tokenizer.apply_chat_template(CHAT, tokenize=False)
