"""Memory a finished stage freed, given back before the next one starts."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import sys


def release_free_memory() -> None:
    """Give freed memory back: to the operating system (glibc keeps freed heap pages otherwise), and
    on a GPU to the driver (torch's caching allocator keeps freed blocks otherwise, and the next
    vLLM engine checks the device's free memory against ``gpu_memory_utilization``)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc (macOS, musl): nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    torch = sys.modules.get("torch")  # never imported here only for this
    if torch is not None and torch.cuda.is_initialized():  # asking would not initialise CUDA
        torch.cuda.empty_cache()
