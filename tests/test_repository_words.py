"""The repository speaks of the project alone: no words about how its work was organised, and no
file it cites that does not exist."""

import re
import subprocess

from tests.conftest import REPO_ROOT

#: phrases that belong to how the work was organised, not to the project
INTERNAL = re.compile(
    "|".join(
        [r"\bsess" + r"ions? \d", "issues " + "stops", "this work" + "place", "development work" + "space"]
        + ["beside the " + "checkout", r"\.\./sha" + "red/"]
    ),
    re.IGNORECASE,
)  # pieces joined, so this file does not hold the phrases it looks for


def tracked_text_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.splitlines() if not name.endswith((".png", ".jpg", ".parquet", ".gz"))]


def test_no_tracked_file_speaks_of_how_the_work_was_organised():
    found = []
    for name in tracked_text_files():
        for number, line in enumerate((REPO_ROOT / name).read_text(errors="ignore").splitlines(), 1):
            if INTERNAL.search(line):
                found.append(f"{name}:{number}: {line.strip()[:100]}")
    assert not found, "\n".join(found)


def test_every_conf_file_the_repository_cites_exists():
    cited = set()
    for name in tracked_text_files():
        cited |= set(re.findall(r"conf/accelerate/[\w.-]+\.ya?ml", (REPO_ROOT / name).read_text(errors="ignore")))
    assert cited and all((REPO_ROOT / path).is_file() for path in cited), sorted(cited)
