"""A plan before a long run: every model stage and training of ``iteration1`` with its rows, batches,
steps, memory per device and time, from the parameters alone (no weights are loaded, nothing is run).

Memory per device (GiB = 2^30 bytes):

- training: weights (2 bytes a parameter in pure bf16, else 4) + gradients and AdamW's two moments
  for the trainable ones (sharded over the processes under FSDP, replicated otherwise) +
  activations (34 bytes per token per hidden unit per layer, Korthikanti et al. 2022, with
  memory-efficient attention; with gradient checkpointing 2 bytes per layer and one layer's 34) +
  the output layer's fp32 logits of one micro-batch + 1 GiB of runtime;
- generation with vLLM: what it reserves (``gpu_memory_utilization`` of the device), which must hold
  the bf16 weights of its tensor-parallel share, and, when it scores completions, their fp32
  log-probabilities over the vocabulary, which vLLM's memory profile does not count.

Time: model FLOPs (training 6·params·tokens, 8 with checkpointing; generation 2·params·tokens)
over the throughput assumptions in ``plan.throughput``, per device used.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from humpback.llm import LLMConfig, SamplingConfig
from humpback.llm.platform import machine_decisions, plain_parameters, planned_gpus, with_value
from humpback.params import (
    AugmentationParams,
    CurationParams,
    EvaluationParams,
    GenerationRunParams,
    IngestionParams,
    ModelShapeParams,
    ModelSourceParams,
    PlanParams,
    RewritingParams,
    TrainedModelParams,
    TrainingParams,
)

logger = logging.getLogger(__name__)

GIB = 2**30
#: activation bytes per token, hidden unit and layer (bf16, memory-efficient attention)
ACTIVATION_BYTES = 34
RUNTIME_GIB = 1.0
#: evaluation answers: base, M0, M1 and the random-selection M1; judged pairs: three comparisons
EVALUATED_MODELS, JUDGED_COMPARISONS = 4, 3


class PlanError(ValueError):
    """A configuration that cannot fit the device it names."""


def read_model_shape(source: ModelSourceParams, fallback: ModelShapeParams) -> dict[str, Any]:
    """The model's shape from its config, read from a local folder or the Hub cache (never the
    network, never the weights); else the shape the environment states (``plan.*_shape``)."""
    from transformers import AutoConfig

    if source.source in ("local", "hub"):
        try:
            config = AutoConfig.from_pretrained(
                source.name_or_path, revision=source.revision, local_files_only=True
            ).get_text_config()
        except (OSError, ValueError):
            config = None
        if config is not None:
            heads = config.num_attention_heads
            return {
                "layers": config.num_hidden_layers,
                "hidden_size": config.hidden_size,
                "intermediate_size": config.intermediate_size,
                "attention_heads": heads,
                "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
                "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
                "vocab_size": config.vocab_size,
                "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
                "shape_from": "config",
            }
    return {**fallback.model_dump(), "shape_from": "parameters"}


def parameter_count(shape: dict[str, Any]) -> tuple[int, int]:
    """(all parameters, those of the input embedding) of a Llama/Gemma-style decoder."""
    hidden, head_dim = shape["hidden_size"], shape["head_dim"]
    attention = hidden * head_dim * (2 * shape["attention_heads"] + 2 * shape["kv_heads"])
    mlp = 3 * hidden * shape["intermediate_size"]
    embedding = shape["vocab_size"] * hidden
    total = shape["layers"] * (attention + mlp + 2 * hidden) + hidden + embedding
    return total + (0 if shape["tied_embeddings"] else embedding), embedding


def expected_rows(ingestion: IngestionParams, plan: PlanParams) -> dict[str, int]:
    """Rows each dataset is expected to hold, from the run's caps and the plan's shares."""
    documents = round((ingestion.web.max_documents or plan.rows.web_documents) * plan.rows.web_kept_share)

    def part_prompts(share: float) -> int:
        """A part of the held-out prompts (ingestion.parts): capped by max_prompts, else its share."""
        return ingestion.heldout.max_prompts or round(plan.rows.heldout_prompts * share)

    candidates = round(documents * plan.rows.candidate_kept_share)
    return {
        "seed_pairs": plan.rows.seed_pairs,
        "documents": documents,
        "candidates": candidates,
        "kept": round(candidates * plan.rows.curated_share),
        "selection_prompts": part_prompts(1 - ingestion.parts.report_share),
        "report_prompts": part_prompts(ingestion.parts.report_share),
    }


def plan_run(
    base_shape: dict[str, Any],
    aligned_shape: dict[str, Any],
    backward_model: TrainedModelParams,
    seed_model: TrainedModelParams,
    m1: TrainedModelParams,
    ingestion: IngestionParams,
    augmentation: AugmentationParams,
    rewriting: RewritingParams,
    curation: CurationParams,
    evaluation: EvaluationParams,
    llm: LLMConfig,
    generation: GenerationRunParams,
    plan: PlanParams,
) -> pd.DataFrame:
    """One row per model stage and training of ``iteration1`` and ``evaluation``, in run order."""
    rows = expected_rows(ingestion, plan)
    reserve = ingestion.seed.reserve_pairs  # held-out pairs from outside the seed set: every seed pair trains
    tokens = plan.mean_tokens
    document, instruction = tokens.prompt_overhead + tokens.document, tokens.instruction
    rating_prompt = (1 + curation.few_shot) * (document + instruction)
    rating_new = curation.sampling.max_new_tokens if curation.scorer == "generate" else 1
    rewritten = {"self_before_curation": rows["candidates"], "after_curation": rows["kept"]}.get(rewriting.mode, 0)
    curated_training = min(rows["seed_pairs"] + rows["kept"], m1.training.max_examples or math.inf)
    # both orders; the judge's controls on the selection part
    judged = 2 * (rows["report_prompts"] * JUDGED_COMPARISONS + rows["selection_prompts"])
    stages = [
        _training("backward_model", backward_model.training, rows["seed_pairs"], tokens, base_shape, plan, reserve),
        _generation(
            "augmentation", rows["documents"], document, decoded(augmentation.sampling, instruction), base_shape
        ),
        _training("seed_model", seed_model.training, rows["seed_pairs"], tokens, base_shape, plan, reserve),
        _generation(
            "rewriting", rewritten, document + instruction, decoded(rewriting.sampling, tokens.answer), base_shape
        ),
        _generation(
            "curation controls",
            control_pairs(rows["selection_prompts"], curation),
            rating_prompt,
            rating_new,
            base_shape,
            scoring=rating_new == 1,
        ),
        _generation(
            "curation controls, base rater",
            control_pairs(rows["selection_prompts"], curation) * curation.base_rater_controls,
            rating_prompt,
            rating_new,
            base_shape,
            scoring=rating_new == 1,
        ),
        _generation("curation", rows["candidates"], rating_prompt, rating_new, base_shape, scoring=rating_new == 1),
        _training("m1", m1.training, curated_training, tokens, base_shape, plan, reserve),
        _training("m1_random", m1.training, curated_training, tokens, base_shape, plan, reserve),
        _generation(
            "evaluation answers",
            rows["report_prompts"] * EVALUATED_MODELS,
            tokens.prompt_overhead + instruction,
            decoded(evaluation.sampling, tokens.answer),
            base_shape,
        ),
        _generation(
            "evaluation judge", judged, tokens.prompt_overhead + instruction + 2 * tokens.answer, 1, aligned_shape
        ),
    ]
    planned = [{**stage, **_engine_columns(stage, llm, generation, plan)} for stage in stages if stage["rows"]]
    trainings = [row for row in planned if row["kind"] == "train"]
    engines = engine_starts([row["stage"] for row in planned if row["kind"] != "train"])
    written_gib = sum(row["written_gib"] for row in trainings)
    overheads = [
        _overhead("ingestion", plan.rows.web_documents, plan.rows.web_documents / plan.overheads.documents_per_s),
        _overhead("engine starts", engines, engines * plan.overheads.engine_start_s),
        _overhead(
            "checkpoint writes", sum(row["saves"] for row in trainings), written_gib / plan.overheads.write_gib_per_s
        ),
    ]
    return pd.DataFrame(planned + overheads).reindex(columns=COLUMNS)


def engine_starts(model_stages: list[str]) -> int:
    """Engines a run starts: one a model stage, one per evaluated model, and one for the curator's
    controls and its rating together (consecutive nodes on M0: a run keeps that engine; the base
    model's ratings of the controls, where asked, run before both)."""
    starts = len(model_stages) + (EVALUATED_MODELS - 1) * ("evaluation answers" in model_stages)
    return starts - ("curation controls" in model_stages and "curation" in model_stages)


def control_pairs(heldout_prompts: int, curation: CurationParams) -> int:
    """Pairs the curator's controls rate (``curation/controls.py``): five per held-out prompt, two per
    ranked prompt (as many as held-out ones where every ranked prompt is used), the form control's
    candidates; the few hand-labelled pairs are not counted."""
    ranked = curation.ranked_control_prompts or heldout_prompts
    return 5 * heldout_prompts + 2 * ranked + curation.form_control_candidates


def _overhead(stage: str, rows: int, seconds: float) -> dict[str, Any]:
    """A row of work beside the models' arithmetic: no device memory, only time."""
    return {"stage": stage, "kind": "overhead", "rows": int(rows), "fits": True, "hours": seconds / 3600}


def _checkpoint_saves(params: TrainingParams, shape: dict[str, Any], steps: int, plan: PlanParams) -> tuple[int, float]:
    """(saves, GiB written) of one training: the trained weights in 16 bits (32 on a CPU), and every
    ``checkpoint_steps`` a resumable checkpoint (fp32 weights and AdamW's two fp32 moments of the
    trained ones, gathered on one rank under FSDP)."""
    total, _ = parameter_count(shape)
    resumable = steps // params.checkpoint_steps if params.checkpoint_steps else 0
    final_bytes = 2 if plan.device.kind == "gpu" else 4
    written = total * final_bytes + resumable * (total * 4 + _trainable(params, shape) * 8)
    return 1 + resumable, written / GIB


COLUMNS = [
    "stage",
    "kind",
    "rows",
    "tokens",
    "batch",
    "per_device_batch",
    "accumulation",
    "steps",
    "epochs",
    "devices",
    "memory_gib_one_process",
    "memory_gib",
    "device_gib",
    "fits",
    "hours",
    "parameters_b",
    "shape_from",
]


def _training(
    stage: str,
    params: TrainingParams,
    examples: int,
    tokens,
    shape: dict[str, Any],
    plan: PlanParams,
    reserve: int = 0,
) -> dict[str, Any]:
    processes = params.processes
    batch = params.batch_size_for(int(examples))  # the rules count the pairs held out too
    steps = params.steps_for(int(examples), batch)
    if reserve < params.heldout_examples:  # no reserve to hold out from: seed pairs are held out
        examples = max(int(examples) - params.heldout_examples, 0)
    per_device = min(params.per_device_train_batch_size, max(batch // processes, 1))
    accumulation = max(batch // (per_device * processes), 1)
    sequence = min(tokens.prompt_overhead + tokens.instruction + tokens.answer, params.max_length)
    if params.direction == "backward":
        sequence = min(tokens.prompt_overhead + tokens.document + tokens.instruction, params.max_length)
    trained_tokens = steps * batch * sequence
    total, _ = parameter_count(shape)
    flops = (8 if params.gradient_checkpointing else 6) * total * trained_tokens
    saves, written_gib = _checkpoint_saves(params, shape, steps, plan)
    return {
        "stage": f"{stage} training",
        "kind": "train",
        "rows": examples,
        "tokens": trained_tokens,
        "batch": batch,
        "per_device_batch": per_device,
        "accumulation": accumulation,
        "steps": steps,
        "epochs": round(steps * batch / examples, 2) if examples else 0.0,
        "devices": processes,
        "memory_gib_one_process": _training_memory(params, shape, per_device, 1, _sharded(params)),
        "memory_gib": _training_memory(params, shape, per_device, processes, _sharded(params)),
        "hours": flops / (processes * plan.throughput.train_tflops * 1e12) / 3600,
        "parameters_b": total / 1e9,
        "shape_from": shape["shape_from"],
        "saves": saves,  # for the checkpoint writes row
        "written_gib": written_gib,
    }


def decoded(sampling: SamplingConfig, expected: int) -> int:
    """Tokens a row decodes: the stated mean length of what it writes (``plan.mean_tokens``), at most
    ``max_new_tokens``; most instructions end long before the cap (35 tokens against 256)."""
    return min(sampling.max_new_tokens, expected)


def _generation(
    stage: str, rows: int, prompt: int, new: int, shape: dict[str, Any], scoring: bool = False
) -> dict[str, Any]:
    total, _ = parameter_count(shape)
    return {
        "stage": stage,
        "kind": "score" if scoring else "generate",
        "rows": int(rows),
        "tokens": int(rows) * (prompt + new),
        "prefill_tokens": int(rows) * prompt,
        "decode_tokens": int(rows) * new,
        "parameters_b": total / 1e9,
        "vocab_size": shape["vocab_size"],
        "shape_from": shape["shape_from"],
    }


def _engine_columns(row: dict[str, Any], llm: LLMConfig, generation: GenerationRunParams, plan: PlanParams) -> dict:
    """Devices, memory, fit and time of a generation row (training rows have theirs already)."""
    device_gib = plan.device.memory_gib
    if row["kind"] == "train":
        return {"device_gib": device_gib, "fits": row["memory_gib"] <= device_gib}
    parallel = llm.tensor_parallel_size if llm.backend == "vllm" else 1
    if generation.engine == "ray":  # one engine per actor
        devices = generation.ray.num_actors * parallel
    else:  # one engine in this process, on at most the node's devices
        devices = min(parallel, plan.device.count) if plan.device.kind == "gpu" else parallel
    weights = row["parameters_b"] * 1e9 * 2 / parallel / GIB  # bf16
    logits = 0.0
    if row["kind"] == "score" or row["stage"] == "evaluation judge":
        # vLLM computes prompt log-probabilities one request at a time: the longest request, at most
        # max_model_len tokens, scheduled at most vllm_batched_tokens at a step
        longest = min(llm.max_model_len or plan.device.vllm_batched_tokens, plan.device.vllm_batched_tokens)
        logits = longest * row["vocab_size"] * 4 * 2 / GIB  # fp32 logits and their log-softmax
    reserved = llm.gpu_memory_utilization * device_gib if llm.backend == "vllm" and plan.device.kind == "gpu" else 0
    needed = weights * 1.1 + logits + RUNTIME_GIB  # the engine's own activations and buffers: ~10 %
    memory = max(reserved + logits, needed)
    flops_per_token = 2 * row["parameters_b"] * 1e9
    seconds = (
        flops_per_token
        * (
            row["prefill_tokens"] / plan.throughput.prefill_tflops
            + row["decode_tokens"] / plan.throughput.decode_tflops
        )
        / (1e12 * devices)
    )
    return {
        "batch": None,
        "per_device_batch": None,
        "accumulation": None,
        "steps": None,
        "epochs": None,
        "devices": devices,
        "memory_gib_one_process": memory,
        "memory_gib": memory,
        "device_gib": device_gib,
        "fits": memory <= device_gib and (not reserved or needed <= reserved),
        "hours": seconds / 3600,
    }


def _sharded(params: TrainingParams) -> bool:
    """Whether the launcher shards weights, gradients and optimizer states (FSDP, DeepSpeed ZeRO-3)."""
    if params.launcher != "accelerate" or "--config_file" not in params.launcher_args:
        return False
    path = Path(params.launcher_args[params.launcher_args.index("--config_file") + 1])
    if not path.is_file():
        return False
    config = yaml.safe_load(path.read_text()) or {}
    zero3 = (config.get("deepspeed_config") or {}).get("zero_stage") == 3
    return config.get("distributed_type") == "FSDP" or zero3


def _trainable(params: TrainingParams, shape: dict[str, Any]) -> int:
    """Parameters the training updates (and keeps optimizer state for)."""
    total, embedding = parameter_count(shape)
    if params.method == "lora":
        return int(total * 0.01)  # adapters of rank 8-16 on every linear layer: about 1 %
    return total - (0 if params.train_embeddings else embedding)


def _training_memory(params: TrainingParams, shape: dict[str, Any], batch: int, processes: int, sharded: bool) -> float:
    total, _ = parameter_count(shape)
    trainable = _trainable(params, shape)
    weight_bytes = 2 if params.precision == "bf16" else 4
    moment_bytes = 2 * weight_bytes  # AdamW's two moments, in the weights' dtype
    states = total * weight_bytes + trainable * (weight_bytes + moment_bytes)
    if sharded:
        states /= processes
    elif processes > 1:  # DDP's gradient buckets: a second fp32 copy of the gradients on every device
        states += trainable * 4
    tokens = batch * params.max_length
    layer = tokens * shape["hidden_size"] * ACTIVATION_BYTES
    if params.gradient_checkpointing:
        activations = shape["layers"] * tokens * shape["hidden_size"] * 2 + layer
    else:
        activations = shape["layers"] * layer
    logits = tokens * shape["vocab_size"] * 4
    return (states + activations + logits) / GIB + RUNTIME_GIB


def render_plan(table: pd.DataFrame, plan: PlanParams) -> str:
    """The plan as a Markdown table, with the assumptions it rests on."""
    shown = table.assign(
        memory=[
            ""
            if row.kind == "overhead"
            else f"{row.memory_gib:.1f}"
            + (f" ({row.memory_gib_one_process:.1f} in 1 process)" if row.kind == "train" else "")
            for row in table.itertuples()
        ],
        hours=table["hours"].map(lambda hours: f"{hours:.2f}"),
        fits=table["fits"].map({True: "yes", False: "**no**"}),
        tokens=table["tokens"].map(lambda n: "" if pd.isna(n) else f"{n / 1e6:.1f} M"),
    ).fillna("")
    header = ["stage", "rows", "tokens", "batch", "per device", "accumulation", "steps", "epochs", "devices",
              "GiB per device", "fits", "hours"]  # fmt: skip
    columns = ["stage", "rows", "tokens", "batch", "per_device_batch", "accumulation", "steps", "epochs", "devices",
               "memory", "fits", "hours"]  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in shown[columns].itertuples(index=False):
        lines.append("| " + " | ".join(_cell(value) for value in row) + " |")
    throughput, overheads = plan.throughput, plan.overheads
    lines += [
        "",
        f"Device: {plan.device.count} × {plan.device.kind} of {plan.device.memory_gib:g} GiB. Throughput assumed per "
        f"device: training {throughput.train_tflops:g}, prefill {throughput.prefill_tflops:g}, decode "
        f"{throughput.decode_tflops:g} TFLOP/s (model FLOPs). Model: {table['parameters_b'].iloc[0]:.2f} B parameters "
        f"(shape from {table['shape_from'].iloc[0]}). Total: {table['hours'].sum():.1f} hours.",
        "",
        f"Stated, not measured: generation decodes the mean lengths of `plan.mean_tokens` (instruction "
        f"{plan.mean_tokens.instruction}, answer {plan.mean_tokens.answer} tokens), each at most its `max_new_tokens`; "
        f"`web_kept_share` ({plan.rows.web_kept_share:g}) and `curated_share` ({plan.rows.curated_share:g}) "
        "are guesses that set the candidates' and M1's rows. Per-request seeds (reproducible resume) turn vLLM's "
        "fused top-k/top-p sampler into a loop over rows on GPUs, a cost not yet measured there "
        "(`scripts/gpu_check.py` times it): augmentation and rewriting may take longer than stated.",
        "",
        f"Beside the models (`plan.overheads`): ingestion at {overheads.documents_per_s:g} documents/s in one "
        f"process, {overheads.engine_start_s:g} s per vLLM engine start, checkpoints written at "
        f"{overheads.write_gib_per_s:g} GiB/s (`rows`: saves; a resumable one every `checkpoint_steps` holds "
        "fp32 weights and AdamW's moments).",
    ]
    return "\n".join(lines) + "\n"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else f"{value:g}"
    return str(value)


def check_plan(table: pd.DataFrame, markdown: str) -> dict[str, Any]:
    """Log the plan; refuse, in one line, a configuration whose stages do not fit their devices."""
    logger.info("plan:\n%s", markdown)
    unfit = table.loc[~table["fits"].astype(bool)]
    if len(unfit):
        first = unfit.iloc[0]
        raise PlanError(
            f"{first['stage']} needs {first['memory_gib']:.1f} GiB per device, the device has "
            f"{first['device_gib']:g} GiB ({len(unfit)} stage(s) do not fit; data/08_reporting/plan.md lists them): "
            "turn on gradient_checkpointing, lower per_device_train_batch_size or max_length, or use more devices"
        )
    return {"stages": len(table), "hours": float(table["hours"].sum()), "fits": True}


def plan_from_parameters(blocks: dict[str, Any]) -> pd.DataFrame:
    """The plan from validated parameter blocks (``humpback.params.project_parameters(env)``), as
    the pipeline makes it, ``auto`` settings decided for the machine ``plan.device`` describes: for
    scripts and tests outside ``kedro run``."""
    tree = {name: plain_parameters(block) for name, block in blocks.items()}
    blocks = dict(blocks)
    for path, choice in machine_decisions(tree, planned_gpus(tree)).items():
        name, *inside = path.split(".")
        blocks[name] = with_value(blocks[name], inside, choice)
    shape = read_model_shape(blocks["base_model"], blocks["plan"].model_shape)
    aligned = read_model_shape(blocks["aligned_model"], blocks["plan"].aligned_model_shape)
    names = ("backward_model", "seed_model", "m1", "ingestion", "augmentation", "rewriting", "curation")
    names += ("evaluation", "llm", "generation", "plan")
    return plan_run(shape, aligned, **{name: blocks[name] for name in names})
