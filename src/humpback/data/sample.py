"""Copy the shared sample exports into ``data/01_raw`` for the ``offline`` environment.

Machines that carry the project's sample data beside the checkout (``../shared/data``) get it
staged automatically by ``scripts/dev.sh``; elsewhere put your own exports there (docs/environments.md, "Offline
data"). Nothing here downloads anything.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

#: file name in the shared folder -> file name the ``offline`` catalog reads
SAMPLE_FILES = {
    "oasst1_sample.parquet": "oasst1_messages.parquet",
    "c4_en_sample.parquet": "c4_en_documents.parquet",
}


def default_shared_dir(project_root: Path) -> Path:
    return project_root.parent / "shared" / "data"


def stage_sample_data(shared_dir: Path, raw_dir: Path, overwrite: bool = False) -> list[Path]:
    """Copy every known sample file that exists in ``shared_dir`` and is missing in ``raw_dir``."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for source_name, target_name in SAMPLE_FILES.items():
        source, target = shared_dir / source_name, raw_dir / target_name
        if source.is_file() and (overwrite or not target.exists()):
            shutil.copyfile(source, target)
            copied.append(target)
    return copied


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path.cwd()
    parser.add_argument("--shared-dir", type=Path, default=default_shared_dir(root))
    parser.add_argument("--raw-dir", type=Path, default=root / "data" / "01_raw")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.shared_dir.is_dir():
        if not args.quiet:
            print(f"no shared sample folder at {args.shared_dir}; nothing staged")
        return 0
    for path in stage_sample_data(args.shared_dir, args.raw_dir, args.overwrite):
        print(f"staged sample export {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
