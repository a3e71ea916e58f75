"""Curation reports a user would rather look at than read: funnel, score histogram, examples."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go


def curation_funnel(
    web_documents: pd.DataFrame,
    candidates: pd.DataFrame,
    rated_candidates: pd.DataFrame,
    scored: pd.DataFrame,
    curated: pd.DataFrame,
    selection: dict,
) -> tuple[pd.DataFrame, go.Figure]:
    """documents → candidates → rewritten → rated → kept, as a table and a funnel chart."""
    rewritten = int((rated_candidates.get("rewrite_status", pd.Series(dtype=str)) == "rewritten").sum())
    rows = [
        ("documents", len(web_documents)),
        ("candidates with an instruction", int((candidates["status"] == "ok").sum())),
        ("rewritten before rating", rewritten),
        ("rated", int(scored["score"].notna().sum())),
        ("kept", len(curated)),
    ]
    table = pd.DataFrame(rows, columns=["stage", "count"])
    table["note"] = ""
    if selection.get("nothing_selected"):
        table.loc[table["stage"] == "kept", "note"] = "NOTHING KEPT: the next model trains on seed data alone"
    status_counts = candidates["status"].value_counts()
    for status, count in status_counts.items():
        if status != "ok":
            table.loc[len(table)] = [f"dropped at augmentation: {status}", int(count), ""]
    figure = go.Figure(go.Funnel(y=[r[0] for r in rows], x=[r[1] for r in rows], textinfo="value+percent initial"))
    figure.update_layout(title="Curation funnel")
    return table, figure


def score_histogram(scored: pd.DataFrame) -> go.Figure:
    """How many candidates got each score, per scorer; the expected score too when present."""
    counts = scored.loc[scored["score"].notna()].groupby(["scorer", "score"]).size().rename("candidates").reset_index()
    counts["score"] = counts["score"].astype(int)
    figure = px.bar(
        counts, x="score", y="candidates", color="scorer", barmode="group", title="Scores of candidate pairs"
    )
    figure.update_xaxes(dtick=1, range=[0.5, 5.5])
    return figure


def score_examples(scored: pd.DataFrame, per_score: int) -> pd.DataFrame:
    """A few candidates at each score, shortened for reading in a table preview."""
    rated = scored.loc[scored["score"].notna()]
    picked = rated.groupby("score", group_keys=False).head(per_score).sort_values("score", kind="stable")
    columns = ["score", "scorer", "instruction", "response", "score_status"]
    columns += [c for c in ("expected_score", "score_raw") if c in picked]
    table = picked[columns].copy()
    table["response"] = table["response"].str.slice(0, 300)
    return table.reset_index(drop=True)
