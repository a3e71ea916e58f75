"""What this machine can run: the backend, the number format and the device counts that ``auto``
settings resolve to.

A run decides once, before its first node (``hooks.py``), and writes the decision into its
parameters, so the snapshot, the cache keys and the model cards name what really ran.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
from typing import Any

from pydantic import BaseModel

logger = logging.getLogger(__name__)

#: run in a child process: importing vLLM and its kernels must not start anything in the run's own
#: process, and a broken build must not take it down. The kernels' ops are looked up, not called.
_VLLM_PROBE = """
import torch, vllm
from vllm.platforms import current_platform as platform
if platform.device_type not in ("cuda", "rocm", "cpu", "xpu", "tpu"):
    raise SystemExit(f"vLLM finds no platform it supports here ({platform.device_type or 'none'})")
if platform.device_type == "cpu":
    platform.import_kernels()
    try:
        torch.ops._C.rms_norm
    except (AttributeError, RuntimeError) as error:
        raise SystemExit(f"vLLM's CPU kernels did not load: {error}")
print(vllm.__version__, platform.device_type)
"""


class BackendUnavailableError(RuntimeError):
    """A backend named in the parameters cannot start on this machine."""


@functools.cache
def vllm_problem() -> str | None:
    """Why vLLM cannot start here, in one line; None where it can (probed once a process, ~10 s)."""
    try:
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            return "the vllm module is not installed (extra `cpu-vllm` on CPUs, `gpu` on CUDA machines)"
    except ValueError:  # a half-imported module
        return "the vllm module cannot be found"
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _VLLM_PROBE], capture_output=True, text=True, timeout=300, check=False
        )
    except subprocess.TimeoutExpired:
        return "importing vLLM took over 5 minutes"
    if probe.returncode == 0:
        logger.info("vLLM starts here: %s", probe.stdout.strip())
        return None
    lines = [line for line in probe.stderr.strip().splitlines() if line.strip()]
    return lines[-1] if lines else f"importing vLLM failed (exit code {probe.returncode})"


def native_bf16() -> bool:
    """bf16 arithmetic in hardware: a GPU that has it, or a CPU with AVX-512 BF16 or AMX. Elsewhere
    bf16 is emulated, several times slower than float32 (a training step, a vLLM forward)."""
    import torch

    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def auto_dtype() -> str:
    """``llm.dtype: auto``: bfloat16 where it is native, else float16 on a GPU, float32 on a CPU."""
    import torch

    if native_bf16():
        return "bfloat16"
    return "float16" if torch.cuda.is_available() else "float32"


def auto_precision() -> str:
    """``training.precision: auto``: bf16 autocast over fp32 weights where bf16 is native, else fp32."""
    return "bf16_mixed" if native_bf16() else "fp32"


def auto_backend() -> tuple[str, str]:
    """``llm.backend: auto``: vLLM where it starts, else transformers; with the reason."""
    problem = vllm_problem()
    if problem is None:
        return "vllm", "vLLM starts on this machine"
    return "transformers", f"vLLM cannot start here ({problem})"


def visible_gpus() -> int:
    """CUDA devices this process may use (0 on a CPU machine): what ``auto`` device counts become."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def auto_vllm_scoring() -> str:
    """``llm.vllm_scoring: auto``: vLLM scores completions on GPUs; on a CPU, transformers does,
    whose output layer runs on the completion's positions only (vLLM's on every prompt token)."""
    import torch

    return "vllm" if torch.cuda.is_available() else "transformers"


def check_backend(backend: str) -> None:
    """Stop before any work when a backend named explicitly cannot start here."""
    if backend == "vllm" and (problem := vllm_problem()) is not None:
        raise BackendUnavailableError(f"llm.backend is vllm, but {problem}: set llm.backend to auto or transformers")


def resolve_llm_settings(settings: dict) -> dict[str, str]:
    """The concrete values of a backend block's ``auto`` fields (``backend``, ``dtype``,
    ``vllm_scoring``): what changes, by field name; {} when nothing is ``auto``. A role's overrides
    resolve alike."""
    decided = {}
    if settings.get("backend") == "auto":
        decided["backend"], why = auto_backend()
        logger.info("llm.backend auto → %s: %s", decided["backend"], why)
    if settings.get("vllm_scoring") == "auto":
        decided["vllm_scoring"] = auto_vllm_scoring()
        logger.info("llm.vllm_scoring auto → %s", decided["vllm_scoring"])
    if settings.get("dtype") == "auto" and settings.get("backend") != "openai":
        decided["dtype"] = auto_dtype()
        logger.info("llm.dtype auto → %s (native bf16: %s)", decided["dtype"], native_bf16())
    return decided


def parameter_blocks(tree: dict[str, Any], name: str, path: str = ""):
    """(dotted path, block) of every dict named ``name`` in the parameters, at any depth."""
    for key, value in tree.items():
        if isinstance(value, dict):
            where = f"{path}.{key}" if path else key
            if key == name:
                yield where, value
            yield from parameter_blocks(value, name, where)


def machine_decisions(parameters: dict[str, Any], gpus: int | None = None) -> dict[str, Any]:
    """The ``auto`` settings of a run made concrete for a machine with ``gpus`` GPUs (None: the
    ones this process sees), as {dotted path: value}: the backend and number format of every backend
    block (``llm``, a role's ``*.llm`` overrides), the precision, processes and launcher of every
    training block (``*.training``), and where generation runs (``generation``)."""
    gpus = visible_gpus() if gpus is None else gpus
    decided: dict[str, Any] = {}
    for path, block in parameter_blocks(parameters, "llm"):
        decided.update({f"{path}.{key}": choice for key, choice in resolve_llm_settings(block).items()})
    for path, block in parameter_blocks(parameters, "training"):
        if block.get("precision") == "auto":
            decided[f"{path}.precision"] = auto_precision()
        processes = block.get("nproc_per_node")
        if processes == "auto":
            processes = decided[f"{path}.nproc_per_node"] = max(gpus, 1)
        if block.get("launcher") == "auto":  # several processes: plain data parallelism
            decided[f"{path}.launcher"] = "in_process" if processes == 1 else "torchrun"
    engines = max(gpus // int((parameters.get("llm") or {}).get("tensor_parallel_size") or 1), 1)
    for path, block in parameter_blocks(parameters, "generation"):
        if block.get("engine") == "auto":  # one engine per GPU (or per tensor-parallel group)
            decided[f"{path}.engine"] = "ray" if engines > 1 else "local"
        if (block.get("ray") or {}).get("num_actors") == "auto":
            decided[f"{path}.ray.num_actors"] = engines
    return decided


def planned_gpus(parameters: dict[str, Any]) -> int:
    """The GPUs of the machine ``plan.device`` describes: what the plan sizes ``auto`` counts for."""
    device = (parameters.get("plan") or {}).get("device") or {}
    return int(device.get("count", 1)) if device.get("kind") == "gpu" else 0


def plain_parameters(value: Any) -> Any:
    """Plain data: Kedro hands parameters over as typed models where a node declares one, at any depth."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, dict):
        return {key: plain_parameters(item) for key, item in value.items()}
    return value


def with_value(value: Any, path: list[str], new: Any) -> Any:
    """``value`` (a dict or a parameter model) with the item at ``path`` replaced; same type back."""
    if not path:
        return new
    plain = value.model_dump() if isinstance(value, BaseModel) else dict(value)
    plain[path[0]] = with_value(plain[path[0]] if isinstance(value, BaseModel) else value[path[0]], path[1:], new)
    return type(value).model_validate(plain) if isinstance(value, BaseModel) else plain
