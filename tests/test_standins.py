"""The Llama-3-shaped stand-ins look to the project as Llama 3 models do."""

import pytest
from transformers import AutoConfig, AutoTokenizer, GenerationConfig

from humpback.llm.base import chat_token_ids
from tests.standins import BOS, EOT, build_llama3_standins


@pytest.fixture(scope="module")
def standins(tmp_path_factory, c4_documents):
    return build_llama3_standins(tmp_path_factory.mktemp("standins"), c4_documents["text"].head(200).tolist())


def test_the_tokenizer_is_byte_level_bpe_with_llama3_special_tokens(standins):
    base, instruct = standins
    tokenizer = AutoTokenizer.from_pretrained(base)
    ids = tokenizer("Hello world, 2025!")["input_ids"]
    assert tokenizer.convert_ids_to_tokens(ids)[0] == BOS and ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.pad_token is None and not tokenizer.chat_template  # a base model, as Llama-3.2-3B
    assert tokenizer.decode(ids, skip_special_tokens=True) == "Hello world, 2025!"
    assert "2025" not in tokenizer.convert_ids_to_tokens(ids)  # digits split in threes at most: '202', '5'


def test_the_instruct_copy_renders_llama31_turns_with_one_bos(standins):
    _, instruct = standins
    tokenizer = AutoTokenizer.from_pretrained(instruct)
    ids = chat_token_ids(tokenizer, [{"role": "user", "content": "Hi"}])
    assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    # answers end at <|eot_id|>, as Llama 3.1 Instruct's generation config says
    assert tokenizer.convert_tokens_to_ids(EOT) in GenerationConfig.from_pretrained(instruct).eos_token_id


def test_the_model_has_grouped_query_attention_and_llama3_rope(standins):
    config = AutoConfig.from_pretrained(standins[0])
    assert config.num_key_value_heads < config.num_attention_heads
    assert config.rope_parameters["rope_type"] == "llama3"
