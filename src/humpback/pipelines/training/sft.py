"""Supervised fine-tuning with TRL's SFTTrainer: full or LoRA (merged), loss on completions only."""

from __future__ import annotations

import logging
import math
import os
import tempfile
from typing import Any

import pandas as pd

from humpback.llm.base import chat_token_ids
from humpback.params import TrainingParams
from humpback.pipelines.training.examples import TrainingDataError

logger = logging.getLogger(__name__)


def steps_for_size(n_examples: int, steps_by_size: list[tuple[int, int]]) -> int:
    """The paper's schedule: the step count of the smallest listed size that holds the data."""
    for size, steps in sorted(steps_by_size):
        if n_examples <= size:
            return steps
    return sorted(steps_by_size)[-1][1]


def effective_batch_size(n_examples: int, params: TrainingParams) -> int:
    if params.small_data_batch_size and n_examples < params.small_data_threshold:
        return params.small_data_batch_size
    return params.batch_size


def fit_to_length(examples: pd.DataFrame, tokenizer: Any, params: TrainingParams) -> tuple[pd.DataFrame, dict]:
    """Drop (or cut the completion of) examples longer than ``max_length`` tokens; count them.

    TRL would cut the end of an over-long sequence silently, and a long prompt could leave no
    completion at all: an example that teaches nothing.
    """
    kept_rows, counts = [], {"overlong_dropped": 0, "overlong_truncated": 0}
    for row in examples.itertuples(index=False):
        prompt_len = len(chat_token_ids(tokenizer, list(row.prompt)))
        full = chat_token_ids(tokenizer, list(row.prompt) + list(row.completion), add_generation_prompt=False)
        if len(full) <= params.max_length:
            kept_rows.append(row._asdict())
            continue
        completion_ids = tokenizer.encode(row.completion[0]["content"], add_special_tokens=False)
        room = params.max_length - (len(full) - len(completion_ids))  # template tokens stay
        if params.overlong == "truncate" and prompt_len < params.max_length and room >= 8:
            ids = completion_ids[:room]
            cut = dict(row._asdict(), completion=[{"role": "assistant", "content": tokenizer.decode(ids)}])
            kept_rows.append(cut)
            counts["overlong_truncated"] += 1
        else:
            counts["overlong_dropped"] += 1
    return pd.DataFrame(kept_rows, columns=examples.columns), counts


def build_trainer(examples: pd.DataFrame, model_path: str, params: TrainingParams, output_dir: str):
    """An SFTTrainer for ``examples`` on the model in ``model_path``, and what the length filter did.

    The prompt/completion format with ``completion_only_loss`` puts the loss on the completion
    tokens only (tests check the collated labels).
    """
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    examples, length_counts = fit_to_length(examples, tokenizer, params)
    if len(examples) < params.min_examples:
        raise TrainingDataError(
            f"{len(examples)} training examples left after the length filter (max_length={params.max_length}); "
            f"at least {params.min_examples} needed. Raise max_length or set overlong: truncate."
        )
    batch = effective_batch_size(len(examples), params)
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun / accelerate launch
    per_device = min(params.per_device_train_batch_size, max(batch // processes, 1))
    max_steps = params.max_steps or (steps_for_size(len(examples), params.steps_by_size) if params.steps_by_size else -1)
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if params.bf16 else torch.float32)
    if params.dropout is not None and hasattr(model.config, "attention_dropout"):
        model.config.attention_dropout = params.dropout

    scheduler: dict[str, Any] = {"lr_scheduler_type": "linear"}
    if params.end_learning_rate is not None:
        scheduler = {
            "lr_scheduler_type": "polynomial",
            "lr_scheduler_kwargs": {"lr_end": params.end_learning_rate, "power": 1.0},
        }
    peft_config = None
    if params.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(
            r=params.lora.r,
            lora_alpha=params.lora.alpha,
            lora_dropout=params.lora.dropout,
            target_modules=params.lora.target_modules,
            task_type="CAUSAL_LM",
        )
    dataset = Dataset.from_list(examples[["prompt", "completion"]].to_dict("records"))
    eval_dataset = dataset.select(range(min(params.eval_examples, len(dataset)))) if params.eval_examples else None
    config = SFTConfig(
        output_dir=output_dir,
        max_length=params.max_length,
        per_device_train_batch_size=per_device,
        per_device_eval_batch_size=per_device,
        gradient_accumulation_steps=max(batch // (per_device * processes), 1),
        num_train_epochs=params.num_train_epochs,
        max_steps=max_steps,
        learning_rate=params.learning_rate,
        weight_decay=params.weight_decay,
        warmup_steps=params.warmup_ratio,  # a float below 1 is a fraction of the steps
        bf16=params.bf16,
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=False,
        completion_only_loss=True,
        logging_steps=params.logging_steps,
        save_strategy="no",
        report_to="none",
        seed=params.seed,
        data_seed=params.seed,
        **scheduler,
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    composition = {str(k): int(v) for k, v in examples["source"].value_counts().items()} if "source" in examples else {}
    sizes = {"examples": len(examples), "composition": composition, "batch_size": batch, "processes": processes}
    return trainer, sizes | length_counts


def fit_sft(examples: pd.DataFrame, model_path: str, params: TrainingParams) -> tuple[Any, pd.DataFrame, dict]:
    """Fine-tune the model in ``model_path`` on ``examples``; the trainer stays available so a
    launched run can save from every process (FSDP and DeepSpeed gather the weights collectively).

    Returns:
        The trainer after training, the loss curve (one row per logging step) and a summary
        (sizes, steps, loss before and after, dropped examples).
    """
    with tempfile.TemporaryDirectory(prefix="humpback-sft-") as output_dir:
        trainer, sizes = build_trainer(examples, model_path, params, output_dir)
        evaluate = trainer.eval_dataset is not None
        loss_before = trainer.evaluate()["eval_loss"] if evaluate else math.nan
        result = trainer.train()
        loss_after = trainer.evaluate()["eval_loss"] if evaluate else math.nan
    history = pd.DataFrame(trainer.state.log_history)
    columns = ["step", "epoch", "loss", "learning_rate"]
    curve = history.loc[history["loss"].notna(), columns].reset_index(drop=True) if "loss" in history else pd.DataFrame(columns=columns)
    summary = {
        **sizes,
        "steps": int(result.global_step),
        "train_loss": float(result.training_loss),
        "eval_loss_before": float(loss_before),
        "eval_loss_after": float(loss_after),
        "method": params.method,
        "train_runtime_s": float(result.metrics.get("train_runtime", math.nan)),
    }
    logger.info("training done: %s", summary)
    return trainer, curve, summary


def train_sft(examples: pd.DataFrame, model_path: str, params: TrainingParams) -> tuple[Any, Any, pd.DataFrame, dict]:
    """Fine-tune in this process: the trained model (LoRA adapters merged, so later stages load a
    plain checkpoint, no peft), its tokenizer, the loss curve and the summary."""
    trainer, curve, summary = fit_sft(examples, model_path, params)
    trained = trainer.model.merge_and_unload() if params.method == "lora" else trainer.model
    return trained, trainer.processing_class, curve, summary
