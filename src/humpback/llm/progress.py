"""A progress bar that also reports throughput in tokens per second."""

from __future__ import annotations

import time

from tqdm.auto import tqdm


class TokenProgress:
    def __init__(self, total_prompts: int, description: str, enabled: bool) -> None:
        self._bar = tqdm(total=total_prompts, desc=description, unit="prompt", disable=not enabled)
        self._start = time.perf_counter()
        self._tokens = 0

    def update(self, prompts: int, tokens: int) -> None:
        self._tokens += tokens
        elapsed = max(time.perf_counter() - self._start, 1e-9)
        self._bar.set_postfix(tok_s=f"{self._tokens / elapsed:.0f}")
        self._bar.update(prompts)

    def close(self) -> None:
        self._bar.close()
