"""Curation's scorers on one run's models, side by side: their controls, their cost per pair, and
what each keeps and rejects.

    python benchmarks/curation_scorers.py [--data data] [--candidates 40] [--parts costs,controls]

Needs a run up to the seed model and the candidates (``kedro run --pipeline=iteration1 --env offline
--to-nodes=generate_instructions,seed_model.train_model``): ``<data>/06_models/{seed_model,
base_model}``, ``<data>/03_primary/rated_candidates.parquet`` (else ``03_primary/candidates.parquet``),
the held-out and ranked pairs and the web documents. In one process, with no shard cache, for every
scorer: the time to score the same candidates (seconds per pair and the ratio to the rubric prompt
read as option probabilities), the curator controls, and the five candidates it ranks highest and
lowest. ``--parts`` runs the costs (timed: run them alone on the machine) or the controls, or both;
their results merge into ``benchmarks/curation_scorers.json`` and ``.md``.
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
from humpback.pipelines.curation.nodes import curator_controls, score_candidates, summarise_curator_controls
from humpback.pipelines.curation.scoring import ranking_column

ROOT = Path(__file__).resolve().parent.parent
SCORERS = FORWARD_PASS_SCORERS


def _first_line(text: str, width: int = 90) -> str:
    line = next((part.strip() for part in str(text).splitlines() if part.strip()), "")
    return line[:width] + ("…" if len(line) > width else "")


def _candidates(data: Path, count: int) -> pd.DataFrame:
    rated = data / "03_primary/rated_candidates.parquet"
    frame = pd.read_parquet(rated if rated.exists() else data / "03_primary/candidates.parquet")
    return frame.loc[frame["status"] == "ok"].head(count).reset_index(drop=True)


def _costs_and_examples(candidates, seed_model, base_model, llm, parameters, generation) -> tuple[dict, dict]:
    """Seconds per candidate pair for each scorer (no shard cache), and its five highest and lowest."""
    costs, examples = {}, {}
    for scorer in SCORERS:
        settings = parameters["curation"].model_copy(update={"scorer": scorer})
        start = time.perf_counter()
        scored = score_candidates(
            candidates, seed_model, base_model, llm, settings, generation, parameters["m1"].training
        )
        costs[scorer] = (time.perf_counter() - start) / len(candidates)
        column = ranking_column(scorer)
        order = scored.dropna(subset=[column]).sort_values(column, ascending=False)
        examples[scorer] = {
            side: [
                {
                    "value": round(float(row[column]), 3),
                    "status": row["score_status"],
                    "instruction": row["instruction"],
                    "document": _first_line(row["response"]),
                }
                for _, row in rows.iterrows()
            ]
            for side, rows in (("highest", order.head(5)), ("lowest", order.tail(5)))
        }
    return costs, examples


def _controls(data: Path, candidates, seed_model, base_model, llm, parameters, generation) -> dict:
    """Every scorer on the curator controls, the hand labels included."""
    labels = ROOT / "labels/candidate_labels.csv"
    settings = parameters["curation"].model_copy(update={"scorer": "option_probabilities", "compare_scorers": True})
    start = time.perf_counter()
    controls = curator_controls(
        pd.read_parquet(data / "05_model_input/heldout_pairs.parquet"),
        pd.read_parquet(data / "05_model_input/ranked_pairs.parquet"),
        pd.read_parquet(data / "03_primary/web_documents.parquet"),
        candidates,
        pd.read_csv(labels) if labels.exists() else pd.DataFrame(),
        seed_model,
        base_model,
        llm,
        settings,
        generation,
        parameters["m1"].training,
    )
    check = summarise_curator_controls(controls, seed_model, settings)
    return {
        "controls_seconds": time.perf_counter() - start,
        "control_pairs_per_scorer": int(len(controls) / len(SCORERS)),
        "controls": check["by_scorer"],
    }


def _markdown(result: dict, data: str) -> str:
    lines = [
        "# Curation's scorers side by side",
        "",
        f"{result['date']}, {result['machine']}, transformers backend, float32, no shard cache; the seed model and "
        f"base model of `{data}`. Command: `python benchmarks/curation_scorers.py --data {data}`.",
        "",
    ]
    if "seconds_per_pair" in result:
        costs = result["seconds_per_pair"]
        lines += [
            f"## Cost per candidate pair ({result['candidates']} candidates, each scorer in turn, one process)",
            "",
            "| scorer | seconds per pair | ratio to option_probabilities |",
            "| --- | --- | --- |",
            *(f"| {s} | {costs[s]:.2f} | {costs[s] / costs['option_probabilities']:.2f}× |" for s in costs),
            "",
        ]
    if "controls" in result:
        table = pd.DataFrame(result["controls"])
        lines += [
            f"## Controls ({result['control_pairs_per_scorer']} pairs per scorer, {result['controls_seconds']:.0f} s "
            "for all)",
            "",
            "Share of prompts where the better pair scores higher (`form`, `hand_labels`: AUC of two samples), 95 % "
            "bootstrap interval; pass: lower bound ≥ 0.7; * a gating control.",
            "",
            "| scorer | "
            + " | ".join(
                f"{c}{'*' if g else ''}" for c, g in table.groupby("control", sort=False)["gates"].first().items()
            )
            + " |",
            "| --- |" + " --- |" * table["control"].nunique(),
            *(
                f"| {scorer} | "
                + " | ".join(f"{r.auc:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]" for r in rows.itertuples())
                + " |"
                for scorer, rows in table.groupby("scorer", sort=False)
            ),
            "",
        ]
        hand = table.loc[table["control"] == "hand_labels"]
        if len(hand):
            lines += [
                "Hand labels: precision of what each scorer would keep (good share of its top pairs) against the "
                f"base rate {hand['base_rate'].iloc[0]:.2f} ({int(hand['good'].iloc[0])} good of "
                f"{int(hand['items'].iloc[0])}): "
                + ", ".join(f"{r.scorer} {r.precision_kept:.2f}" for r in hand.itertuples())
                + ".",
                "",
            ]
    for scorer, sides in result.get("examples", {}).items():
        lines += [f"### {scorer}: highest and lowest of the candidates", ""]
        for side, rows in sides.items():
            lines += [f"{side}:", ""]
            lines += [f"- {r['value']} ({r['status']}) · “{r['instruction']}” · {r['document']}" for r in rows]
            lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT / "data"))
    parser.add_argument("--env", default="offline")
    parser.add_argument("--candidates", type=int, default=40, help="candidates the costs are measured on")
    parser.add_argument("--parts", default="costs,controls", help="costs, controls or both (results merge)")
    args = parser.parse_args()
    data, parts = Path(args.data), set(args.parts.split(","))
    parameters = project_parameters(args.env, conf_source=str(ROOT / "conf"))
    llm = parameters["llm"].model_copy(update={"backend": "transformers", "dtype": "float32", "show_progress": False})
    generation = parameters["generation"].model_copy(update={"shard_dir": None})
    seed_model = ModelCheckpointDataset(str(data / "06_models/seed_model")).load()
    base_model = ModelCheckpointDataset(str(data / "06_models/base_model")).load()
    candidates = _candidates(data, 10**9)
    out = ROOT / "benchmarks/curation_scorers.json"
    result = json.loads(out.read_text()) if out.exists() else {}
    result |= {"machine": f"{platform.machine()}, {platform.processor() or 'cpu'}", "date": time.strftime("%Y-%m-%d")}
    if "costs" in parts:
        timed = candidates.head(args.candidates)
        costs, examples = _costs_and_examples(timed, seed_model, base_model, llm, parameters, generation)
        result |= {"candidates": len(timed), "seconds_per_pair": costs, "examples": examples}
        out.write_text(json.dumps(result, indent=2, default=str))
    if "controls" in parts:
        result |= _controls(data, candidates, seed_model, base_model, llm, parameters, generation)
        out.write_text(json.dumps(result, indent=2, default=str))
    text = _markdown(result, args.data)
    (ROOT / "benchmarks/curation_scorers.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
