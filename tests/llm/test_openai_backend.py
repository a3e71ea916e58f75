"""The OpenAI-compatible backend: the protocol against a stand-in server on loopback (retries,
capabilities, keys, order), then judging and rewriting steps through vLLM's own server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest

from humpback.datasets import CheckpointHandle, ModelCheckpointDataset
from humpback.llm import SamplingConfig, build_llm
from humpback.llm.openai_backend import ServerCapabilityError, ServerError
from tests.conftest import HELDOUT_PAIRS, NO_SHARDS, params

GREEDY = SamplingConfig(temperature=0.0, top_p=1.0, max_new_tokens=8, stop=[], seed=0)


class StandIn(BaseHTTPRequestHandler):
    """Answers /v1/completions like a server: the text names the prompt's length; logprobs on
    request; a scripted number of 503s first; and no echo (a capability it lacks). /v1/chat/completions
    names the messages' count and the last message's role, with top log-probabilities on request."""

    failures_left = 0
    requests: list[dict] = []
    headers_seen: list[str | None] = []

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        StandIn.requests.append(body)
        StandIn.headers_seen.append(self.headers.get("Authorization"))
        if StandIn.failures_left:
            StandIn.failures_left -= 1
            return self._send(503, {"error": "busy"})
        if self.path.endswith("/chat/completions"):
            messages = body["messages"]
            choice = {"message": {"role": "assistant", "content": f"{len(messages)} {messages[-1]['role']}"}}
            if body.get("top_logprobs"):
                top = [{"token": t, "logprob": np.log(p)} for t, p in (("1", 0.5), ("2", 0.4), ("x", 0.1))]
                choice["logprobs"] = {"content": [{"token": "1", "logprob": np.log(0.5), "top_logprobs": top}]}
            return self._send(200, {"choices": [choice]})
        if body.get("echo"):
            return self._send(400, {"error": "echo is not supported"})
        choice = {"text": f"{len(body['prompt'])} tokens", "logprobs": None}
        if body.get("logprobs"):
            choice["logprobs"] = {"top_logprobs": [{"1": np.log(0.6), "2": np.log(0.3), "x": np.log(0.1)}]}
        self._send(200, {"choices": [choice]})

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def stand_in():
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandIn)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()


def served(base_url: str, **changes):
    return params("llm", backend="openai", base_url=base_url, served_model="stand-in", **changes)


def test_token_prompts_in_order_with_retries_and_the_key_from_the_environment(stand_in, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("STAND_IN_KEY", "secret")
    StandIn.failures_left, StandIn.requests[:], StandIn.headers_seen[:] = 2, [], []
    config = served(stand_in, api_key_env="STAND_IN_KEY", concurrency=3, max_retries=3)
    with build_llm(config, str(tiny_model_dir)) as lm:
        prompts = ["a", "a b c d", "a b", "a b c d e f g h"]
        texts = lm.generate(prompts, GREEDY)
        lengths = [len(ids) for ids in lm.encode(prompts)]
    assert texts == [f"{n} tokens" for n in lengths]  # the server saw token ids, answers in order
    assert len(StandIn.requests) == 4 + 2  # two 503s retried
    assert set(StandIn.headers_seen) == {"Bearer secret"} and StandIn.requests[-1]["model"] == "stand-in"


def test_option_probabilities_come_from_the_top_logprobs(stand_in, tiny_model_dir):
    with build_llm(served(stand_in), str(tiny_model_dir)) as lm:
        probabilities = lm.score_options(["Which?"], ["1", "2", "0"])
    np.testing.assert_allclose(probabilities, [[0.6, 0.3, 0.0]])  # "0" is outside the top list


def test_text_prompts_are_the_rendered_prompt_without_its_beginning_of_text(stand_in, tiny_model_dir):
    StandIn.requests[:] = []
    with build_llm(served(stand_in, openai_prompt="text"), str(tiny_model_dir)) as lm:
        texts = lm.generate(["a b c"], GREEDY)
        [ids] = lm.encode(["a b c"])
        probabilities = lm.score_options(["Which?"], ["1", "2", "0"])
        with_bos = lm._prompt([lm.tokenizer.bos_token_id, *ids])
    sent = StandIn.requests[0]["prompt"]
    assert sent == lm.tokenizer.decode(ids) == with_bos  # a beginning-of-text token is the server's to add
    assert texts == [f"{len(sent)} tokens"] and isinstance(StandIn.requests[1]["prompt"], str)
    np.testing.assert_allclose(probabilities, [[0.6, 0.3, 0.0]])


def test_chat_prompts_send_messages_and_continue_a_last_assistant_message(stand_in, tiny_model_dir):
    StandIn.requests[:] = []
    chats = [
        [{"role": "user", "content": "Rate this."}],
        [{"role": "user", "content": "Rate this."}, {"role": "assistant", "content": "Score: "}],
    ]
    with build_llm(served(stand_in, openai_prompt="chat"), str(tiny_model_dir)) as lm:
        generated = lm.generate_ids(lm.encode(chats), GREEDY, chats)
        probabilities = lm.option_probabilities_ids(lm.encode(chats[1:]), ["1", "2", "0"], chats[1:])
        with pytest.raises(ValueError, match="pass the prompts"):
            lm.generate(["Hello"], GREEDY)  # a caller that sends tokens only
        with pytest.raises(ServerCapabilityError, match="chat APIs cannot score given completions"):
            lm.completion_logprobs(["Q?"], ["An answer."])
    assert [g.text for g in generated] == ["1 user", "2 assistant"]
    # the two generations are in flight together (llm.concurrency): the server may see either first
    by_turns = {len(body["messages"]): body for body in StandIn.requests[:2]}
    assert by_turns[1]["messages"] == chats[0] and "continue_final_message" not in by_turns[1]
    assert by_turns[2]["continue_final_message"] and not by_turns[2]["add_generation_prompt"]
    np.testing.assert_allclose(probabilities, [[0.5, 0.4, 0.0]])


def test_the_runner_sends_a_chat_api_each_rows_messages_and_keys_on_them(stand_in, tiny_model_dir, tmp_path):
    from humpback.pipelines.augmentation.nodes import generate_instructions

    documents = HELDOUT_PAIRS.rename(columns={"reference": "text", "prompt_id": "doc_id"}).assign(url="")
    model = CheckpointHandle(str(tiny_model_dir))
    generation = params("generation", shard_dir=str(tmp_path), shard_size=2)
    StandIn.requests[:] = []
    by_chat = generate_instructions(
        documents, model, served(stand_in, openai_prompt="chat"), params("augmentation"), generation
    )
    assert len(StandIn.requests) == len(documents) and all("messages" in body for body in StandIn.requests)
    assert StandIn.requests[0]["messages"][-1]["content"].endswith(documents["text"].iloc[0].strip()[-40:])
    assert by_chat["raw_instruction"].str.endswith(" user").all()
    StandIn.requests[:] = []
    generate_instructions(documents, model, served(stand_in, openai_prompt="text"), params("augmentation"), generation)
    assert len(StandIn.requests) == len(documents)  # what is sent is part of the key: nothing reused


def test_a_missing_capability_is_one_clear_error(stand_in, tiny_model_dir):
    with build_llm(served(stand_in), str(tiny_model_dir)) as lm, pytest.raises(ServerCapabilityError, match="echo"):
        lm.completion_logprobs(["Q?"], ["An answer."])


def test_an_unreachable_server_fails_after_its_retries(tiny_model_dir, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free, and nothing listens on it
    monkeypatch.setattr("time.sleep", lambda seconds: None)
    config = served(f"http://127.0.0.1:{port}/v1", max_retries=2)
    with build_llm(config, str(tiny_model_dir)) as lm, pytest.raises(ServerError, match="failed 3 times"):
        lm.generate(["Hello"], GREEDY)


def test_a_missing_key_names_the_variable(stand_in, tiny_model_dir, monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="NO_SUCH_KEY"):
        build_llm(served(stand_in, api_key_env="NO_SUCH_KEY"), str(tiny_model_dir))


def test_role_overrides_name_known_fields_only():
    with pytest.raises(ValueError, match="unknown fields"):
        params("evaluation", judge=params("evaluation").judge.model_dump() | {"llm": {"base_ur": "x"}})


# --- vLLM's own server with the embedded aligned model -------------------------------------------


@pytest.fixture(scope="module")
def aligned_model_dir(tmp_path_factory):
    from humpback.pipelines.base_model.nodes import materialise_aligned_model

    path = tmp_path_factory.mktemp("aligned") / "aligned_model"
    ModelCheckpointDataset(path=str(path)).save(materialise_aligned_model(params("aligned_model")))
    return path


@pytest.fixture(scope="module")
def vllm_server(aligned_model_dir, tmp_path_factory):
    pytest.importorskip("vllm")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    cores = sorted(os.sched_getaffinity(0))
    env = {
        **os.environ,
        "VLLM_CPU_OMP_THREADS_BIND": f"{cores[0]}-{cores[-1]}",
        "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
        "VLLM_CPU_KVCACHE_SPACE": "1",
    }
    log = open(tmp_path_factory.mktemp("vllm") / "server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(aligned_model_dir),
            "--served-model-name",
            "smollm2",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dtype",
            "bfloat16",
            "--enforce-eager",
            "--max-model-len",
            "2048",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.close()
            pytest.fail(f"vllm serve exited: {Path(log.name).read_text()[-2000:]}")
        try:
            if httpx.get(f"{base_url}/models", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(2)
    else:
        server.kill()
        pytest.fail("vllm serve did not answer within 300 s")
    yield base_url
    server.terminate()
    server.wait(timeout=60)
    log.close()


@pytest.mark.slow
@pytest.mark.vllm
@pytest.mark.parametrize("sent", ["token_ids", "text", "chat"])
def test_judging_and_rewriting_through_vllms_openai_server(vllm_server, aligned_model_dir, sent):
    from humpback.pipelines.evaluation import nodes as evaluation
    from humpback.pipelines.rewriting.nodes import rewrite_selected

    served = {
        "backend": "openai",
        "base_url": vllm_server,
        "served_model": "smollm2",
        "concurrency": 2,
        "openai_prompt": sent,
    }
    judge = CheckpointHandle(str(aligned_model_dir), {"role": "aligned", "model_id": "smollm2"})
    local = params("llm")
    judging = params("evaluation", judge=params("evaluation").judge.model_dump() | {"llm": served})
    controls = evaluation.judge_controls(HELDOUT_PAIRS, judge, local, judging, NO_SHARDS)
    served_p = controls.filter(like="challenger_first_p_").to_numpy(dtype=float)
    assert served_p.shape == (4, 3)
    # the same tokens reach the server: where a digit is among its top tokens, the in-process model
    # (float32 here, bfloat16 there) gives it about the same probability
    in_process = evaluation.judge_controls(HELDOUT_PAIRS, judge, local, params("evaluation"), NO_SHARDS)
    local_p = in_process.filter(like="challenger_first_p_").to_numpy(dtype=float)
    seen = served_p > 0
    assert seen.sum() >= 3
    np.testing.assert_allclose(served_p[seen], local_p[seen], rtol=0.35)
    # a prompt with no digit among the top tokens is not judged (never read as "first")
    unjudged = np.isnan(served_p).all(axis=1)
    assert (controls["challenger_first_verdict"].isna() == unjudged).all()
    check = evaluation.summarise_judge_controls(controls, judge, judging)
    assert 0 <= check["control_accuracy"] <= 1 and isinstance(check["passed"], bool)

    rewriting = params("rewriting", mode="after_curation", model="aligned", llm=served)
    kept = HELDOUT_PAIRS.rename(columns={"reference": "response"}).assign(doc_id=HELDOUT_PAIRS["prompt_id"])
    rewritten = rewrite_selected(kept, judge, judge, judge, local, rewriting, NO_SHARDS)
    assert len(rewritten) == 4 and rewritten["rewrite_raw"].map(lambda text: isinstance(text, str) and text).all()
    assert set(rewritten["rewrite_status"]) <= {"rewritten", "no_markers", "empty", "degenerate", "truncated"}
