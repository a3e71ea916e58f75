"""Supervised fine-tuning with TRL's SFTTrainer: full or LoRA (merged), loss on completions only."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from humpback.llm import load_tokenizer
from humpback.llm.base import stop_token_ids
from humpback.llm.platform import auto_precision
from humpback.params import TrainingParams
from humpback.pipelines.training.examples import HELDOUT, TRAIN, TrainingDataError

logger = logging.getLogger(__name__)


#: config fields that hold a dropout probability, across architectures (Llama, Gemma: attention)
DROPOUT_FIELDS = (
    "attention_dropout",
    "hidden_dropout",
    "dropout",
    "resid_pdrop",
    "embd_pdrop",
    "attn_pdrop",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
)


def score_label_positions_only() -> None:
    """Make TRL's fused LM head project only the positions that carry a label, on CPU too.

    TRL does so on CUDA/XPU only; elsewhere it scores every position, prompt and padding included,
    to keep tile shapes fixed for compilers (Neuron). Eager CPU code compiles nothing, and with a
    262k-token vocabulary the output layer is most of a step: the backward model, whose prompt is
    a whole document and whose completion a short instruction, trains several times faster
    (benchmarks/training_speed.md). The loss is the same (tests compare both).
    """
    import trl.trainer.utils as trl_utils

    original = trl_utils._use_triton  # in this module it decides only that "compact" scoring
    if getattr(original, "humpback_compact_on_cpu", False):
        return

    def compact_on_cpu(device) -> bool:
        return device.type == "cpu" or original(device)

    compact_on_cpu.humpback_compact_on_cpu = True
    trl_utils._use_triton = compact_on_cpu


def load_trainable_model(model_path: str, params: TrainingParams):
    """The model to fine-tune: dropout set in the config it is built from (modules copy their
    probability when they are built, so changing the config later has no effect), weights in
    fp32 unless pure bf16 is asked for, embeddings frozen when asked."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_path)
    if params.dropout is not None:
        text_config = config.get_text_config()
        for name in DROPOUT_FIELDS:
            if isinstance(getattr(text_config, name, None), float):
                setattr(text_config, name, params.dropout)
    dtype = torch.bfloat16 if params.precision == "bf16" else torch.float32
    model = AutoModelForCausalLM.from_pretrained(model_path, config=config, dtype=dtype)
    if not params.train_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)  # the output layer too where tied
    return model


def build_trainer(examples: pd.DataFrame, model_path: str, params: TrainingParams, output_dir: str):
    """An SFTTrainer for the ``train`` examples, evaluating on the ``heldout`` ones, and its sizes.

    The prompt/completion format with ``completion_only_loss`` puts the loss on the completion
    tokens only (tests check the collated labels); TRL's fused LM head computes logits only at
    those positions. The configuration comes first: it sets up the devices and, in a launched run,
    the process group, so FSDP's RAM-efficient loading can leave the weights to rank 0.
    """
    from datasets import Dataset
    from trl import SFTTrainer

    tokenizer = load_tokenizer(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    train = examples.loc[examples["split"] == TRAIN]
    heldout = examples.loc[examples["split"] == HELDOUT]
    if len(train) < params.min_examples:
        raise TrainingDataError(f"{len(train)} training examples; at least {params.min_examples} needed")
    processes = int(os.environ.get("WORLD_SIZE", "1"))  # set by torchrun / accelerate launch
    # the paper's batch and step rules count the whole training set, the pairs held out to measure
    # the loss with it (3,200 seed pairs with 256 held out are batch 32, not the small-data 8)
    config = sft_config(params, len(examples), processes, output_dir, evaluate=len(heldout) > 0)
    model = load_trainable_model(model_path, params)
    score_label_positions_only()

    def dataset(rows: pd.DataFrame):
        return Dataset.from_list(rows[["prompt", "completion", "truncated"]].to_dict("records"))

    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset(train),
        eval_dataset=dataset(heldout) if len(heldout) else None,
        processing_class=tokenizer,
        peft_config=_lora_config(params),
    )
    end_ids = set(stop_token_ids(model_path, tokenizer))
    trainer.train_dataset = without_answer_end_when_cut(trainer.train_dataset, end_ids)
    if trainer.eval_dataset is not None:
        trainer.eval_dataset = without_answer_end_when_cut(trainer.eval_dataset, end_ids)
    sizes = {
        "examples": len(train),
        "composition": {str(k): int(v) for k, v in train["source"].value_counts().items()},
        "heldout_examples": len(heldout),
        "overlong_truncated": int(examples["truncated"].sum()),
        "batch_size": params.batch_size_for(len(examples)),
        "processes": processes,
        "trainable_parameters": int(sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)),
    }
    return trainer, sizes


def without_answer_end_when_cut(dataset, end_ids: set[int]):
    """A cut answer (``overlong: truncate``) must not end with the token that ends an answer: the
    model would learn to stop mid-sentence. TRL closes every conversational completion with the
    chat template's end of turn; for the examples marked ``truncated``, everything from the last
    answer-end token on is removed again, so their last label is the answer's last word."""

    def strip(example):
        labels = example["labels"]  # TRL's: the token where learned, -100 where not (the prompt)
        ends = [i for i, label in enumerate(labels) if label in end_ids]
        if not example["truncated"] or not ends or all(label == -100 for label in labels[: ends[-1]]):
            return example
        return {"input_ids": example["input_ids"][: ends[-1]], "labels": labels[: ends[-1]]}

    return dataset.map(strip, desc="Removing the answer end from cut answers")


def sft_config(params: TrainingParams, train_examples: int, processes: int, output_dir: str, evaluate: bool):
    """TRL's ``SFTConfig`` from the training block: the batch split over processes and accumulation
    steps, the step budget, the learning-rate schedule, precision, checkpoints and trackers.

    The held-out loss before training is measured by the Trainer at the start of ``train()``
    (``eval_on_start``), once model and optimizer are prepared together: evaluating first would
    make accelerate prepare the model alone, which its FSDP2 path refuses.
    """
    import torch
    from trl import SFTConfig

    batch = params.batch_size_for(train_examples)
    per_device = min(params.per_device_train_batch_size, max(batch // processes, 1))
    max_steps = params.scheduled_steps(train_examples) or -1  # -1: num_train_epochs decides
    scheduler: dict[str, Any] = {"lr_scheduler_type": "linear"}
    if params.end_learning_rate is not None:
        scheduler = {
            "lr_scheduler_type": "polynomial",
            "lr_scheduler_kwargs": {"lr_end": params.end_learning_rate, "power": 1.0},
        }
    checkpoints: dict[str, Any] = {"save_strategy": "no"}
    if params.checkpoint_steps:
        checkpoints = {"save_strategy": "steps", "save_steps": params.checkpoint_steps, "save_total_limit": 1}
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
        bf16=training_precision(params) != "fp32",  # autocast; the weights' dtype was chosen when loading
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=params.gradient_checkpointing,
        completion_only_loss=True,
        logging_steps=params.logging_steps,
        eval_on_start=evaluate,
        report_to=params.report_to or "none",
        seed=params.seed,
        data_seed=params.seed,
        # batches of similar lengths: less padding (documents vary from 150 to 750 tokens)
        train_sampling_strategy="group_by_length" if params.group_by_length else "random",
        **checkpoints,
        **scheduler,
    )
    return one_device_per_process(config)


def training_precision(params: TrainingParams) -> str:
    """The precision this machine trains in: ``auto`` is bf16_mixed where bf16 is native, else fp32
    (a run has decided it before its first node; a script calling this module decides it here)."""
    return auto_precision() if params.precision == "auto" else params.precision


def one_device_per_process(config):
    """Train on one device per process. Without a launcher, transformers would wrap the model in
    ``nn.DataParallel`` over every visible GPU: the batch would grow with the GPU count, against
    the configured one, and TRL's bound forward would run cuda:0's module on the others' inputs.
    More GPUs are for a launcher (``training.launcher``), one process each."""
    if config.n_gpu > 1:  # only ever above 1 in a single process that sees several GPUs
        logger.warning(
            "%d GPUs visible to an in-process training: it uses one; launch with training.launcher: "
            "torchrun or accelerate to train on all",
            config.n_gpu,
        )
        config._n_gpu = 1
    return config


def _lora_config(params: TrainingParams):
    """PEFT's LoRA settings for ``method: lora``; None trains every weight."""
    if params.method != "lora":
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=params.lora.r,
        lora_alpha=params.lora.alpha,
        lora_dropout=params.lora.dropout,
        target_modules=params.lora.target_modules,
        task_type="CAUSAL_LM",
    )


#: settings that change how a training runs or reports, never what it computes: not part of its job key
RUNTIME_SETTINGS = {"launch_timeout_s", "checkpoint_dir", "report_to", "logging_steps", "launcher_args"}


def checkpoint_folder(examples: pd.DataFrame, model_path: str, params: TrainingParams) -> Path | None:
    """Where this training job keeps its checkpoints: one folder per role, base model, examples and
    settings, so a rerun of the same job resumes and any other starts afresh (None: no checkpoints)."""
    if not params.checkpoint_steps:
        return None
    identity = Path(model_path) / "humpback.json"
    settings = params.model_dump(mode="json", exclude=RUNTIME_SETTINGS)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    digest.update(identity.read_bytes() if identity.is_file() else str(model_path).encode())
    digest.update(examples[["prompt", "completion", "split"]].to_json(orient="values").encode())
    return Path(params.checkpoint_dir) / f"{params.role}-{digest.hexdigest()[:16]}"


def fit_sft(
    examples: pd.DataFrame, model_path: str, params: TrainingParams, per_example_heldout: bool = False
) -> tuple[Any, pd.DataFrame, dict]:
    """Fine-tune the model in ``model_path`` on ``examples``, resuming from the job's last checkpoint
    if a killed run left one; the trainer stays available so a launched run can save from every
    process (FSDP and DeepSpeed gather the weights collectively).

    Returns:
        The trainer after training, the loss curve (one row per logging step) and a summary
        (sizes, steps, epochs, held-out loss before and after, the step it resumed from; with
        ``per_example_heldout``, each held-out example's loss after training, ``heldout_losses``).
    """
    from transformers.trainer_utils import get_last_checkpoint

    folder = checkpoint_folder(examples, model_path, params)
    with tempfile.TemporaryDirectory(prefix="humpback-sft-") as scratch:
        output_dir = str(folder) if folder else scratch
        trainer, sizes = build_trainer(examples, model_path, params, output_dir)
        last = get_last_checkpoint(output_dir) if folder and folder.is_dir() else None
        if last:
            logger.info("resuming training from %s", last)
        result = trainer.train(resume_from_checkpoint=last)
        evaluate = trainer.eval_dataset is not None
        loss_after = trainer.evaluate()["eval_loss"] if evaluate else math.nan
    history = pd.DataFrame(trainer.state.log_history)
    columns = ["step", "epoch", "loss", "learning_rate"]
    curve = (
        history.loc[history["loss"].notna(), columns].reset_index(drop=True)
        if "loss" in history
        else pd.DataFrame(columns=columns)
    )
    evaluations = history.loc[history["step"] == 0, "eval_loss"].dropna() if "eval_loss" in history else []
    summary = {
        **sizes,
        "steps": int(result.global_step),
        "resumed_from_step": int(Path(last).name.rsplit("-", 1)[1]) if last else 0,
        "train_loss": float(result.training_loss),
        "epochs": float(trainer.state.epoch or 0),
        # completion loss per token on held-out seed pairs the model did not train on
        "heldout_loss_before": float(evaluations.iloc[0]) if len(evaluations) else math.nan,
        "heldout_loss_after": float(loss_after),
        "method": params.method,
        "precision": training_precision(params),
        # how the processes shared the work: NO (one), MULTI_CPU / MULTI_GPU (DDP), FSDP, DEEPSPEED
        "distributed": str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1],
        "train_runtime_s": float(result.metrics.get("train_runtime", math.nan)),
    }
    if per_example_heldout:
        summary["heldout_losses"] = heldout_losses(trainer)
    logger.info("training done: %s", summary)
    return trainer, curve, summary


def heldout_losses(trainer) -> list[float]:
    """Each held-out example's completion loss per token, in held-out order: one evaluation an
    example, so that trainings on the same examples compare pairwise over them (the trainer's own
    ``eval_loss`` is one mean over them all)."""
    data = trainer.eval_dataset
    if data is None:
        return []
    return [float(trainer.evaluate(eval_dataset=data.select([row]))["eval_loss"]) for row in range(len(data))]


def discard_checkpoints(examples: pd.DataFrame, model_path: str, params: TrainingParams) -> None:
    """Remove a finished job's checkpoints (the trained model is saved by the catalog)."""
    folder = checkpoint_folder(examples, model_path, params)
    if folder is not None and folder.is_dir():
        shutil.rmtree(folder)


def train_sft(examples: pd.DataFrame, model_path: str, params: TrainingParams) -> tuple[Any, Any, pd.DataFrame, dict]:
    """Fine-tune in this process: the trained model (LoRA adapters merged, so later stages load a
    plain checkpoint, no peft), its tokenizer, the loss curve and the summary."""
    trainer, curve, summary = fit_sft(examples, model_path, params)
    trained = trainer.model.merge_and_unload() if params.method == "lora" else trainer.model
    return trained, trainer.processing_class, curve, summary
