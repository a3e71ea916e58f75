"""Serialisable settings of a language-model backend (one block per environment).

The values live in ``conf/base/parameters/engine.yml`` (``llm``); this model describes and checks them.
Fields marked :data:`RUNTIME_ONLY` change how fast or how visibly a backend works, never what it
answers: the cache of finished shards ignores them, every other field is part of its key.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from humpback.llm.platform import auto_vllm_scoring

#: marks a setting that cannot change a model's outputs (speed, memory, progress display)
RUNTIME_ONLY = {"runtime_only": True}


class LLMConfig(BaseModel):
    """How to run a model; where the model is comes separately (a checkpoint folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: scripted: answers come from a rule (``script``), for tests and dry runs of a pipeline
    #: openai: a model behind an OpenAI-compatible server (``base_url``); the stage's model folder
    #: gives the tokenizer and must hold the served model's weights
    #: auto: vllm where it starts on this machine, else transformers (decided when a run starts)
    backend: Literal["auto", "transformers", "vllm", "scripted", "openai"]
    #: auto: bfloat16 where the hardware has it natively, else float32 (float16 on older GPUs)
    dtype: Literal["auto", "float32", "bfloat16", "float16"]
    #: seed of sampling
    seed: int
    #: run the model repository's own code (off: safe by default)
    trust_remote_code: bool
    #: longest prompt + generation the backend accepts; None = the model's own limit
    max_model_len: int | None = Field(gt=0)
    #: show a progress bar for long generation and scoring
    show_progress: bool = Field(json_schema_extra=RUNTIME_ONLY)
    # transformers backend
    #: padded tokens (prompt + new) per batch: batches of short prompts are large, long ones small
    batch_token_budget: int = Field(gt=0, json_schema_extra=RUNTIME_ONLY)
    #: most prompts one forward pass holds
    max_batch_size: int = Field(gt=0, json_schema_extra=RUNTIME_ONLY)
    #: torch intra-op threads; None = every core this process may use
    num_threads: int | None = Field(gt=0, json_schema_extra=RUNTIME_ONLY)
    # vLLM backend
    tensor_parallel_size: int = Field(gt=0, json_schema_extra=RUNTIME_ONLY)
    gpu_memory_utilization: float = Field(gt=0, le=1, json_schema_extra=RUNTIME_ONLY)
    enforce_eager: bool = Field(json_schema_extra=RUNTIME_ONLY)
    #: vLLM's CPU build: GiB of its KV cache, allocated beside the model (the variable
    #: VLLM_CPU_KVCACHE_SPACE, when set, wins); on GPUs gpu_memory_utilization sizes it
    cpu_kv_cache_gib: float = Field(gt=0, json_schema_extra=RUNTIME_ONLY)
    vllm_kwargs: dict
    #: prompt tokens per vLLM call when scoring given completions (None: one call). It sets how often
    #: progress is reported, not memory: vLLM computes prompt log-probabilities one request at a time,
    #: so their logits peak at the longest request (≤ max_model_len tokens × the vocabulary, ~2 GB for
    #: 4,096 tokens of a 128k vocabulary in fp32), whatever the tokens per call
    score_batch_tokens: int | None = Field(gt=0, json_schema_extra=RUNTIME_ONLY)
    #: what computes teacher-forced log-probabilities (likelihood scorers, controls, NLL checks)
    #: under backend vllm. vllm: the engine itself; transformers: the weights loaded a second time in
    #: this process, the output layer applied to the completion's positions only. vLLM's CPU build
    #: computes a prompt's log-probabilities over the whole vocabulary at every prompt token (Gemma's
    #: 262k entries: 8 GiB in its worker and most of a CPU run). auto: vllm on GPUs, else transformers
    vllm_scoring: Literal["auto", "vllm", "transformers"]
    # openai backend
    #: the server's API root, e.g. http://localhost:8000/v1
    base_url: str | None
    #: the model's name on the server
    served_model: str | None
    #: what is sent: token_ids (the prompt as the model folder's tokenizer renders it, to
    #: ``/completions``: the server sees the tokens the cache keys on; vLLM's server), text (that
    #: rendered prompt as text, to ``/completions``: most servers), chat (the messages, to
    #: ``/chat/completions``, rendered by the server's own template: hosted chat APIs; they cannot
    #: score given completions)
    openai_prompt: Literal["token_ids", "text", "chat"]
    #: the environment variable that holds the API key (never the key itself); None: no key
    api_key_env: str | None = Field(json_schema_extra=RUNTIME_ONLY)
    #: requests in flight at once
    concurrency: int = Field(gt=0, json_schema_extra=RUNTIME_ONLY)
    #: retries of a failed request (connection errors, timeouts, 429, 5xx), with exponential backoff
    max_retries: int = Field(ge=0, json_schema_extra=RUNTIME_ONLY)
    #: the served backend's timeout per request
    request_timeout_s: float = Field(gt=0, json_schema_extra=RUNTIME_ONLY)
    # scripted backend
    #: "module:attribute" of an object answering requests by rule (see ``humpback.llm.scripted``)
    script: str | None

    def with_overrides(self, overrides: dict[str, Any]) -> LLMConfig:
        """This configuration with some fields replaced: one role's model (the judge, the rewriter)
        served elsewhere while the other stages keep theirs."""
        return type(self).model_validate(self.model_dump() | overrides) if overrides else self

    @property
    def sends_chats(self) -> bool:
        """The backend is sent each prompt's messages, not its tokens: the runner hands them over."""
        return self.backend == "openai" and self.openai_prompt == "chat"

    def for_completion_scoring(self) -> LLMConfig:
        """The configuration that scores given completions (``vllm_scoring``, decided for this
        machine where a run has not decided it): another backend only under vllm."""
        if self.backend != "vllm":
            return self
        scoring = auto_vllm_scoring() if self.vllm_scoring == "auto" else self.vllm_scoring
        return self.with_overrides({"backend": "transformers"}) if scoring == "transformers" else self

    def output_settings(self) -> dict[str, Any]:
        """The settings that can change what the model answers: part of every cache key."""
        runtime = {name for name, field in type(self).model_fields.items() if field.json_schema_extra == RUNTIME_ONLY}
        return self.model_dump(exclude=runtime)
