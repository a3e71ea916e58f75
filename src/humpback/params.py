"""Typed, validated parameter blocks, one per stage (like TRL's config dataclasses).

`conf/<env>/parameters*.yml` hold the values; these models hold the meaning, the defaults that are
safe to rely on, and the bounds. :func:`validate_parameters` runs when a Kedro context is created
(see ``hooks.py``) so a typo or an impossible value stops the run before any work, with one
message that lists every problem.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from humpback.llm.base import SamplingConfig
from humpback.llm.config import LLMConfig


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SeedParams(_Block):
    split: str = "train"
    languages: list[str] = Field(default_factory=lambda: ["en"], min_length=1)
    rank: int = Field(0, ge=0)
    max_text_chars: int = Field(20_000, gt=0)
    drop_synthetic: bool = True
    max_pairs: int | None = Field(None, gt=0)
    sample_seed: int = 42
    #: share of conversation trees kept out of the seed for evaluation (offline: the sample is one
    #: split); 0 when the evaluation prompts come from another split
    heldout_fraction: float = Field(0.0, ge=0, lt=1)


class NearDuplicateParams(_Block):
    enabled: bool = True
    threshold: float = Field(0.8, gt=0, le=1)
    num_perm: int = Field(128, gt=0)
    bands: int = Field(32, gt=0)
    shingle_words: int = Field(5, gt=0)

    @model_validator(mode="after")
    def _bands_divide_permutations(self) -> NearDuplicateParams:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self


class WebParams(_Block):
    split: str = "train"
    max_documents: int | None = Field(None, gt=0)
    max_raw_chars: int = Field(100_000, gt=0)
    min_chars: int = Field(600, ge=0)
    max_chars: int = Field(3_000, gt=0)
    min_english_stopword_ratio: float = Field(0.15, ge=0, le=1)
    max_repeated_sentence_fraction: float = Field(0.3, ge=0, le=1)
    max_boilerplate_line_fraction: float = Field(0.5, ge=0, le=1)
    boilerplate_keywords: list[str] = Field(default_factory=list)
    near_duplicates: NearDuplicateParams = NearDuplicateParams()

    @model_validator(mode="after")
    def _length_bounds_ordered(self) -> WebParams:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) exceeds max_chars ({self.max_chars})")
        return self


class IngestionParams(_Block):
    seed: SeedParams = SeedParams()
    web: WebParams = WebParams()


class ModelSourceParams(_Block):
    """Where a model comes from: a GGUF embedded in a PyPI package, a Hub id, or a local folder."""

    source: Literal["embedded", "hub", "local"]
    #: embedded: the model's name (gemma-3-270m, smollm2-135m-instruct); hub: an id; local: a folder
    name_or_path: str
    gguf_file: str | None = None
    revision: str | None = None
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    trust_remote_code: bool = False
    #: prompt format saved with the checkpoint: auto (the model's own chat template, else the
    #: project's plain format ending answers with the model's eos), project, or a Jinja template
    chat_template: str = "auto"


class LoraParams(_Block):
    r: int = Field(8, gt=0)
    alpha: int = Field(16, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: str | list[str] = "all-linear"


class TrainingParams(_Block):
    """Supervised fine-tuning of one model (backward, seed, M1, M2) with TRL's SFTTrainer."""

    #: what this model is in the method (backward, seed, m1, …): recorded in its checkpoint
    role: str = "model"
    direction: Literal["forward", "backward"] = "forward"
    use_tags: bool = True
    #: cap on the training set (the models this project follows used 16,000); seed pairs always kept
    max_examples: int | None = Field(16_000, gt=0)
    method: Literal["full", "lora"] = "full"
    lora: LoraParams = LoraParams()
    max_length: int = Field(512, gt=8)
    #: examples longer than max_length: drop them, or cut the completion (prompt kept whole)
    overlong: Literal["drop", "truncate"] = "drop"
    min_examples: int = Field(1, gt=0)
    # optimisation (paper: lr 1e-5 decaying linearly to 9e-6, weight decay 0.1, batch 32 / 8 under 3,000)
    learning_rate: float = Field(1e-5, gt=0)
    end_learning_rate: float | None = Field(None, ge=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_ratio: float = Field(0.0, ge=0, lt=1)
    dropout: float | None = Field(None, ge=0, lt=1)
    batch_size: int = Field(8, gt=0)
    small_data_batch_size: int | None = Field(None, gt=0)
    small_data_threshold: int = Field(3_000, gt=0)
    per_device_train_batch_size: int = Field(4, gt=0)
    num_train_epochs: float = Field(1.0, gt=0)
    max_steps: int | None = Field(None, gt=0)
    #: [[examples, steps], …]: steps by data size as in the paper (used when max_steps is null;
    #: without either, the budget is num_train_epochs over the data)
    steps_by_size: list[tuple[int, int]] = Field(default_factory=list)
    #: fp32; bf16_mixed: fp32 weights, bf16 autocast (tiny updates survive); bf16: pure bf16 weights
    #: (less memory, but updates below bf16's resolution are lost at small learning rates)
    precision: Literal["fp32", "bf16_mixed", "bf16"] = "bf16_mixed"
    #: batches of examples of similar length (less padding); random batches otherwise
    group_by_length: bool = True
    #: false freezes the token embeddings (tied to the output layer in Gemma/Llama 3.2): much less
    #: optimizer state and a faster step where the vocabulary is large
    train_embeddings: bool = True
    seed: int = 42
    logging_steps: int = Field(1, gt=0)
    #: pairs kept out of training to measure the loss before and after it (0 = skip)
    heldout_examples: int = Field(16, ge=0)
    #: in_process: train inside the Kedro node; torchrun / accelerate: a subprocess launcher with
    #: ``nproc_per_node`` processes (GPUs, or CPU processes over gloo), same checkpoint on disk
    launcher: Literal["in_process", "torchrun", "accelerate"] = "in_process"
    nproc_per_node: int = Field(1, gt=0)
    #: extra launcher options, e.g. ["--config_file", "conf/accelerate/deepspeed_zero2.yaml"]
    launcher_args: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainingParams:
        for size in (self.batch_size, self.small_data_batch_size or self.per_device_train_batch_size):
            if size % self.per_device_train_batch_size and size > self.per_device_train_batch_size:
                raise ValueError(f"batch size {size} is not a multiple of per_device_train_batch_size")
        return self


class TrainedModelParams(_Block):
    """One namespaced training block: `backward_model`, `seed_model`, `m1`, …"""

    training: TrainingParams = TrainingParams()


class RayParams(_Block):
    """Ray Data settings of the generation stages (``generation.engine: ray``)."""

    #: None: start a local cluster for the run; "auto" or "ray://host:10001": join an existing one
    address: str | None = None
    #: CPUs of the local cluster; None: every core
    num_cpus: int | None = Field(None, gt=0)
    num_actors: int = Field(2, gt=0)
    #: keep actors below the cluster's CPUs: Ray Data's read task needs one free (else it hangs)
    cpus_per_actor: float = Field(0.5, gt=0)
    gpus_per_actor: float = Field(0, ge=0)
    threads_per_actor: int = Field(1, gt=0)
    #: wall-clock limit of one stage's Ray work, checked as results come back; finished shards are kept
    timeout_s: float = Field(3600, gt=0)
    #: actors the cluster cannot start within this time fail the run (Ray would otherwise wait forever)
    actor_start_timeout_s: float = Field(600, ge=1)


class GenerationRunParams(_Block):
    """Where the LLM stages run, where they keep finished shards, and how big a shard is."""

    #: local: this process (starts faster, less memory); ray: Ray Data actors
    engine: Literal["local", "ray"] = "local"
    ray: RayParams = RayParams()
    shard_dir: str | None = "data/02_intermediate/shards"
    shard_size: int = Field(64, gt=0)


class AugmentationParams(_Block):
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_new_tokens=64)
    min_instruction_chars: int = Field(10, ge=1)
    max_instruction_chars: int = Field(500, gt=0)
    #: an instruction whose words are mostly copied from the document is an echo, not a request
    max_copied_fraction: float = Field(0.9, gt=0, le=1)


class RewritingParams(_Block):
    mode: Literal["off", "self_before_curation", "after_curation"] = "off"
    #: after_curation rewriter: aligned (the embedded aligned model, as the back-and-forth paper uses
    #: an aligned model), self (the iteration's own model: M0, then M1), or a folder / Hub id
    model: str = "aligned"
    #: iteration 2: rewrite (M1 rewrites again, from the web text, as the seed models' cards say)
    #: or reuse (rate iteration 1's rewrites)
    iteration2: Literal["rewrite", "reuse"] = "rewrite"
    sampling: SamplingConfig = SamplingConfig(temperature=0.7, top_p=0.9, max_new_tokens=384)
    min_chars: int = Field(20, ge=1)


class SelectionParams(_Block):
    method: Literal["threshold", "top_fraction"] = "threshold"
    threshold: int = Field(5, ge=1, le=5)
    top_fraction: float = Field(0.1, gt=0, le=1)


class CurationParams(_Block):
    scorer: Literal["option_probabilities", "generate"] = "option_probabilities"
    few_shot: int = Field(2, ge=0, le=3)
    #: generate scorer only: brief reasoning, then `Score: N`
    sampling: SamplingConfig = SamplingConfig(temperature=0, max_new_tokens=96)
    selection: SelectionParams = SelectionParams()
    #: rows per score kept in the examples report
    examples_per_score: int = Field(3, ge=0)


class RewritingVariantsParams(_Block):
    """The rewriting settings of the variant pipelines, one M1 per mode (compared by evaluation)."""

    self_before_curation: RewritingParams = RewritingParams(mode="self_before_curation")
    after_curation: RewritingParams = RewritingParams(mode="after_curation")

    @model_validator(mode="after")
    def _modes_match_names(self) -> RewritingVariantsParams:
        for name in ("self_before_curation", "after_curation"):
            if getattr(self, name).mode != name:
                raise ValueError(f"variant {name} must have mode {name}, not {getattr(self, name).mode}")
        return self


class JudgeParams(_Block):
    #: aligned: the embedded aligned model (never a contestant); or a folder / Hub id of a stronger judge
    model: str = "aligned"
    #: the judge also rates each pair in swapped order; disagreements count as ties
    both_orders: bool = True


class EvaluationParams(_Block):
    #: split of the held-out oasst1 messages when they come as a dataset dictionary
    split: str = "validation"
    #: held-out prompts used, taken in a seed-stable pseudo-random order
    max_prompts: int | None = Field(None, gt=0)
    sample_seed: int = 42
    #: responses to the held-out prompts (greedy by default: comparable between models)
    sampling: SamplingConfig = SamplingConfig(temperature=0, max_new_tokens=256)
    judge: JudgeParams = JudgeParams()
    #: two-sided normal quantile of the win-rate confidence interval (1.96: 95 %)
    z: float = Field(1.96, gt=0)


#: top-level parameter key -> the model that validates it
PARAMETER_BLOCKS: dict[str, type[BaseModel]] = {
    "ingestion": IngestionParams,
    "base_model": ModelSourceParams,
    "aligned_model": ModelSourceParams,
    "backward_model": TrainedModelParams,
    "seed_model": TrainedModelParams,
    "m1": TrainedModelParams,
    "m2": TrainedModelParams,
    "llm": LLMConfig,
    "generation": GenerationRunParams,
    "augmentation": AugmentationParams,
    "rewriting": RewritingParams,
    "curation": CurationParams,
    "rewriting_variants": RewritingVariantsParams,
    "evaluation": EvaluationParams,
}


class ParameterError(ValueError):
    """Raised once per run with every problem found in the parameters."""


def validate_parameters(params: dict) -> dict[str, BaseModel]:
    """Validate every known block; unknown top-level keys are reported as likely typos."""
    problems: list[str] = []
    validated: dict[str, BaseModel] = {}
    for key, value in params.items():
        if key.startswith("_"):  # YAML anchors shared between blocks
            continue
        model = PARAMETER_BLOCKS.get(key)
        if model is None:
            problems.append(f"{key}: unknown parameter block (known: {', '.join(sorted(PARAMETER_BLOCKS))})")
            continue
        try:
            validated[key] = model.model_validate(value or {})
        except ValidationError as error:
            for item in error.errors():
                where = ".".join(str(part) for part in (key, *item["loc"]))
                problems.append(f"{where}: {item['msg']}")
    if problems:
        raise ParameterError("invalid parameters:\n  - " + "\n  - ".join(problems))
    return validated
