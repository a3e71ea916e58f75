"""Curation's scorers on one run's models, side by side: their controls, their cost per pair, and
what each keeps and rejects.

    python benchmarks/curation_scorers.py [--data data] [--candidates 90]

Needs a run up to the seed model and the candidates (``kedro run --pipeline=iteration1 --env offline
--to-nodes=generate_instructions,seed_model.train_model``): ``<data>/06_models/{seed_model,
base_model}``, ``<data>/03_primary/rated_candidates.parquet`` (else ``03_primary/candidates.parquet``),
the held-out and ranked pairs and the web documents. In one process, with no shard cache, for every
scorer: the time to score the same candidates (seconds per pair and the ratio to the rubric prompt
read as option probabilities), the curator controls, and the five candidates it ranks highest and
lowest. Writes ``benchmarks/curation_scorers.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import pandas as pd

from humpback.datasets import ModelCheckpointDataset
from humpback.params import FORWARD_PASS_SCORERS, project_parameters
from humpback.pipelines.curation.nodes import (
    curator_controls,
    ranking_column,
    score_candidates,
    summarise_curator_controls,
)

ROOT = Path(__file__).resolve().parent.parent
SCORERS = FORWARD_PASS_SCORERS


def _first_line(text: str, width: int = 90) -> str:
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line[:width] + ("…" if len(line) > width else "")


def _candidates(data: Path, count: int) -> pd.DataFrame:
    rated = data / "03_primary/rated_candidates.parquet"
    frame = pd.read_parquet(rated if rated.exists() else data / "03_primary/candidates.parquet")
    return frame.loc[frame["status"] == "ok"].head(count).reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data"))
    parser.add_argument("--env", default="offline")
    parser.add_argument("--candidates", type=int, default=90)
    args = parser.parse_args()
    data = Path(args.data)
    parameters = project_parameters(args.env, conf_source=str(ROOT / "conf"))
    llm = parameters["llm"].model_copy(update={"backend": "transformers", "dtype": "float32", "show_progress": False})
    generation = parameters["generation"].model_copy(update={"shard_dir": None})
    seed_model = ModelCheckpointDataset(str(data / "06_models/seed_model")).load()
    base_model = ModelCheckpointDataset(str(data / "06_models/base_model")).load()
    candidates = _candidates(data, args.candidates)
    heldout = pd.read_parquet(data / "05_model_input/heldout_pairs.parquet")
    ranked = pd.read_parquet(data / "05_model_input/ranked_pairs.parquet")
    web = pd.read_parquet(data / "03_primary/web_documents.parquet")

    costs, examples = {}, {}
    for scorer in SCORERS:
        settings = parameters["curation"].model_copy(update={"scorer": scorer})
        start = time.perf_counter()
        scored = score_candidates(candidates, seed_model, base_model, llm, settings, generation)
        costs[scorer] = (time.perf_counter() - start) / len(candidates)
        order = scored.dropna(subset=[ranking_column(scorer)]).sort_values(ranking_column(scorer), ascending=False)
        examples[scorer] = {
            side: [
                {
                    "value": round(float(row[ranking_column(scorer)]), 3),
                    "status": row["score_status"],
                    "instruction": row["instruction"],
                    "document": _first_line(row["response"]),
                }
                for _, row in rows.iterrows()
            ]
            for side, rows in (("highest", order.head(5)), ("lowest", order.tail(5)))
        }
    settings = parameters["curation"].model_copy(update={"scorer": "option_probabilities", "compare_scorers": True})
    start = time.perf_counter()
    controls = curator_controls(heldout, ranked, web, candidates, seed_model, base_model, llm, settings, generation)
    controls_seconds = time.perf_counter() - start
    check = summarise_curator_controls(controls, seed_model, settings)
    table = pd.DataFrame(check["by_scorer"])

    result = {
        "machine": f"{platform.machine()}, {platform.processor() or 'cpu'}",
        "date": time.strftime("%Y-%m-%d"),
        "candidates": len(candidates),
        "seconds_per_pair": costs,
        "controls_seconds": controls_seconds,
        "control_pairs_per_scorer": int(len(controls) / len(SCORERS)),
        "controls": check["by_scorer"],
        "examples": examples,
    }
    (ROOT / "benchmarks/curation_scorers.json").write_text(json.dumps(result, indent=2, default=str))
    lines = [
        "# Curation's scorers side by side",
        "",
        f"One run, {result['date']}, {result['machine']}, transformers backend, float32, no shard cache; the "
        f"seed model and base model of `{args.data}`; {len(candidates)} candidates. "
        "Command: `python benchmarks/curation_scorers.py`.",
        "",
        "## Cost per candidate pair",
        "",
        "| scorer | seconds per pair | ratio to option_probabilities |",
        "| --- | --- | --- |",
        *(f"| {s} | {costs[s]:.2f} | {costs[s] / costs['option_probabilities']:.2f}× |" for s in SCORERS),
        "",
        f"## Controls ({result['control_pairs_per_scorer']} pairs per scorer, {controls_seconds:.0f} s for all)",
        "",
        "Share of prompts where the better pair scores higher (`form`: AUC of two samples), 95 % bootstrap "
        "interval; pass: lower bound ≥ 0.7; * marks a gating control.",
        "",
        "| scorer | "
        + " | ".join(f"{c}{'*' if g else ''}" for c, g in table.groupby("control", sort=False)["gates"].first().items())
        + " |",
        "| --- |" + " --- |" * table["control"].nunique(),
        *(
            f"| {scorer} | "
            + " | ".join(f"{r.auc:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}] (n={r.items})" for r in rows.itertuples())
            + " |"
            for scorer, rows in table.groupby("scorer", sort=False)
        ),
        "",
        "## What each scorer ranks highest and lowest",
        "",
    ]
    for scorer, sides in examples.items():
        lines += [f"### {scorer}", ""]
        for side, rows in sides.items():
            lines += [f"{side}:", ""]
            lines += [f"- {r['value']} · “{r['instruction']}” · {r['document']}" for r in rows]
            lines.append("")
    (ROOT / "benchmarks/curation_scorers.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
