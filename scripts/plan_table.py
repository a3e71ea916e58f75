"""Print the plan of an environment as Markdown, as `kedro run --pipeline=plan --env ENV` writes it to
data/08_reporting/plan.md (docs/environments.md's sizing table is `python scripts/plan_table.py nothumpback_m1`)."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from humpback.params import project_parameters  # noqa: E402
from humpback.pipelines.plan.nodes import plan_from_parameters, render_plan  # noqa: E402

if __name__ == "__main__":
    blocks = project_parameters(sys.argv[1] if len(sys.argv) > 1 else "base", str(ROOT / "conf"))
    print(render_plan(plan_from_parameters(blocks), blocks["plan"]), end="")
