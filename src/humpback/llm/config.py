"""Serialisable settings of a language-model backend (one block per environment)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class LLMConfig(BaseModel):
    """How to run a model; where the model is comes separately (a checkpoint folder)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["transformers", "vllm"] = "transformers"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "bfloat16"
    seed: int = 0
    trust_remote_code: bool = False
    #: longest prompt + generation the backend accepts; None = the model's own limit
    max_model_len: int | None = Field(None, gt=0)
    show_progress: bool = True
    # transformers backend
    #: padded tokens (prompt + new) per batch: batches of short prompts are large, long ones small
    batch_token_budget: int = Field(4_096, gt=0)
    max_batch_size: int = Field(64, gt=0)
    #: torch intra-op threads; None = every core this process may use
    num_threads: int | None = Field(None, gt=0)
    # vLLM backend
    tensor_parallel_size: int = Field(1, gt=0)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    enforce_eager: bool = False
    vllm_kwargs: dict = Field(default_factory=dict)
