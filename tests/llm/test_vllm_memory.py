"""A run builds one vLLM engine per stage in one process: a closed engine must leave nothing behind
(each used to keep ~1 GiB in a default run's process: its tokenizer copies and, for the first, the
whole client)."""

import functools
import gc
import sys
import types
import weakref

import pytest

from humpback.llm import SamplingConfig, build_llm
from humpback.llm.vllm_backend import release_vllm_module_state
from tests.conftest import params


class Payload:
    """Stands for what vLLM's module state keeps: a tokenizer, a frame's locals."""


def test_module_caches_and_kept_import_errors_of_vllm_let_their_objects_go(monkeypatch):
    module = types.ModuleType("vllm._humpback_test_state")
    module.cached = functools.lru_cache(lambda value: len(vars(value)))
    cached, in_frame = Payload(), Payload()
    module.cached(cached)

    def failing_import(held):
        raise ImportError("No module named 'torchcodec'")

    try:
        failing_import(in_frame)
    except ImportError as error:
        module.import_error = error  # as vllm.multimodal.media.audio keeps torchcodec's
    monkeypatch.setitem(sys.modules, module.__name__, module)
    references = [weakref.ref(cached), weakref.ref(in_frame)]
    del cached, in_frame
    gc.collect()
    assert all(reference() is not None for reference in references)  # held, as in vLLM

    assert release_vllm_module_state() >= 2
    gc.collect()
    assert [reference() for reference in references] == [None, None]
    assert str(module.import_error) == "No module named 'torchcodec'"  # the error itself is kept


def _vllm_tokenizers_of(path: str) -> list:
    return [
        o
        for o in gc.get_objects()
        if type(o).__name__.startswith(("Cached", "TokenizerPool")) and getattr(o, "name_or_path", None) == path
    ]


@pytest.mark.vllm
def test_a_closed_engine_leaves_neither_its_client_nor_its_tokenizers(tiny_model_dir):
    pytest.importorskip("vllm")
    path = str(tiny_model_dir)
    model = build_llm(params("llm", backend="vllm", enforce_eager=True, max_model_len=512), path)
    greedy = SamplingConfig(temperature=0, top_p=1.0, max_new_tokens=4, stop=[], seed=None)
    model.generate([[{"role": "user", "content": "Name a colour."}]], greedy)
    client = weakref.ref(model.llm)
    assert _vllm_tokenizers_of(path)
    model.close()
    del model
    gc.collect()
    assert _vllm_tokenizers_of(path) == []
    assert client() is None
