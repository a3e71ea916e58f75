"""Llama-3-shaped stand-ins, built offline: what the GPU environments' models look like to this project,
small enough for a CPU.

- a byte-level BPE tokenizer trained with ``tokenizers`` on the given texts, with Llama 3's split
  pattern and special tokens (``<|begin_of_text|>`` added by the tokenizer, ``<|end_of_text|>``,
  ``<|eot_id|>``; no pad token), like Llama-3.2-3B's;
- a tiny random Llama with grouped-query attention and llama3 RoPE scaling, saved as a *base*
  model (no chat template), like Llama-3.2-3B (tied embeddings) or Llama-3.1-8B (untied);
- an instruct copy with the Llama 3.1 chat template (header ids, ``<|eot_id|>`` ends a turn), as
  the aligned model.

Used by the CPU dress rehearsal (``scripts/rehearse.sh``), its tests and ``scripts/gpu_check.py``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

#: Llama 3's pre-tokenizer split pattern (tiktoken's cl100k-style regex)
LLAMA3_SPLIT = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
BOS, EOS, EOT = "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>"
SPECIAL_TOKENS = [BOS, EOS, "<|start_header_id|>", "<|end_header_id|>", EOT]
#: Llama 3.1's chat template, without its tool-calling branches and default date header
LLAMA31_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


def train_llama3_tokenizer(texts: Iterable[str], vocab_size: int = 2048):
    """A byte-level BPE tokenizer with Llama 3's split pattern and special tokens, trained on ``texts``."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    backend.train_from_iterator(texts, trainer=trainer)
    bos_id = backend.token_to_id(BOS)
    # Llama 3 adds <|begin_of_text|> to every encoded text (templates then skip it: add_special_tokens=False)
    backend.post_processor = processors.TemplateProcessing(single=f"{BOS} $A", special_tokens=[(BOS, bos_id)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=BOS, eos_token=EOS)


def build_llama3_standins(
    folder: Path, texts: Iterable[str], *, tied_embeddings: bool = True, max_position_embeddings: int = 4096
) -> tuple[Path, Path]:
    """A base and an instruct stand-in in ``folder``/base and ``folder``/instruct; returns both paths."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    tokenizer = train_llama3_tokenizer(texts)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=2,  # head size 64: vLLM rejects smaller ones
        num_key_value_heads=1,  # grouped-query attention, as Llama 3
        max_position_embeddings=max_position_embeddings,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 512,
        },
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=tied_embeddings,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    base, instruct = Path(folder) / "base", Path(folder) / "instruct"
    model.save_pretrained(base)
    tokenizer.save_pretrained(base)
    model.save_pretrained(instruct)
    tokenizer.chat_template = LLAMA31_CHAT_TEMPLATE
    tokenizer.eos_token = EOT  # as Llama-3.1-8B-Instruct's tokenizer config says
    tokenizer.save_pretrained(instruct)
    eot = tokenizer.convert_tokens_to_ids(EOT)
    end_of_text = tokenizer.convert_tokens_to_ids(EOS)
    GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=[end_of_text, eot]).save_pretrained(instruct)
    (base / "STANDIN.json").write_text(json.dumps({"of": "a Llama 3 base model", "tied": tied_embeddings}))
    return base, instruct
