"""The one way this project loads a tokenizer from a model folder or Hub id."""

from __future__ import annotations

from typing import Any


def load_tokenizer(location: str, *, trust_remote_code: bool = False, **options: Any) -> Any:
    """A fresh tokenizer (callers may set its padding); remote code only when asked for.

    ``options`` go to ``AutoTokenizer.from_pretrained`` (``revision``, ``gguf_file``, ``padding_side``).
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(location), trust_remote_code=trust_remote_code, **options)
