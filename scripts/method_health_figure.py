"""Draw a finished run's method-health table as a PNG (the README's picture).

    python scripts/method_health_figure.py --env offline --out docs/images/method_health.png

Reads `iteration1.method_health` and `evaluation.method_health` through the catalog (the newest
version of each) and draws the same bars as the table's plotly figure: each check's value with its
interval, green passed, red failed, grey informative, the threshold marked. Needs matplotlib
(`pip install matplotlib`); the pipelines do not.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
COLOURS = {True: "#2e8b57", False: "#dc143c"}


def load_tables(env: str) -> pd.DataFrame:
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(ROOT)
    with KedroSession.create(project_path=ROOT, env=env) as session:
        catalog = session.load_context().catalog
        names = [name for name in ("iteration1.method_health", "evaluation.method_health") if catalog.exists(name)]
        return pd.concat([catalog.load(name) for name in names], ignore_index=True)


def draw(table: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{model}: {check}" for model, check in zip(table["model"], table["check"])]
    figure, axes = plt.subplots(figsize=(9, 0.42 * len(table) + 1.2), dpi=110)
    for row, item in enumerate(table.itertuples()):
        colour = COLOURS.get(item.passed, "#9e9e9e") if isinstance(item.passed, bool) else "#9e9e9e"
        axes.barh(row, item.value, color=colour, height=0.6)
        if not (math.isnan(item.ci_low) or math.isnan(item.ci_high)):
            axes.plot([item.ci_low, item.ci_high], [row, row], color="black", linewidth=1)
        if isinstance(item.threshold, str) and item.threshold:
            axes.annotate(
                item.threshold, (max(item.value, 0), row), xytext=(4, -3), textcoords="offset points", fontsize=7
            )
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_title("Method health of the default run: green passed, red failed, grey informative", fontsize=9)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="offline")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "method_health.png")
    args = parser.parse_args()
    draw(load_tables(args.env), args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
