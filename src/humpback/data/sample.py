"""The ``offline`` environment's raw inputs in ``data/01_raw``, found in this order:

1. exports already there (your own, or from an earlier run) are used as they are;
2. the sample exports in a local folder are copied: ``HUMPBACK_SAMPLE_DIR`` (``--sample-dir``), by
   default ``shared/data`` in the folder that holds the project, where a team keeps one copy;
3. with ``--fetch``, the same small sample comes from the Hugging Face Hub: the English messages of
   oasst1's validation split, and the first 1,000 documents of c4 ``en``, streamed;
4. otherwise one line says how to provide them.

``scripts/dev.sh run`` calls it (``--fetch`` when the run is offline).
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pandas as pd

#: file name in the shared folder -> file name the ``offline`` catalog reads
SAMPLE_FILES = {
    "oasst1_sample.parquet": "oasst1_messages.parquet",
    "c4_en_sample.parquet": "c4_en_documents.parquet",
}
#: staged where the shared sample has it, never required: more ranked replies for the evaluation
OPTIONAL_SAMPLE_FILES = {"oasst_export_en_100_trees.jsonl.gz": "oasst_export_en_100_trees.jsonl.gz"}


def default_sample_dir(project_root: Path) -> Path:
    """``HUMPBACK_SAMPLE_DIR``, else ``shared/data`` beside the project's folder."""
    return Path(os.environ.get("HUMPBACK_SAMPLE_DIR") or project_root.parent / "shared" / "data")


def stage_sample_data(shared_dir: Path, raw_dir: Path, overwrite: bool = False) -> list[Path]:
    """Copy every known sample file that exists in ``shared_dir`` and is missing in ``raw_dir``."""
    raw_dir.mkdir(parents=True, exist_ok=True)
    copied = []
    for source_name, target_name in (SAMPLE_FILES | OPTIONAL_SAMPLE_FILES).items():
        source, target = shared_dir / source_name, raw_dir / target_name
        if source.is_file() and (overwrite or not target.exists()):
            shutil.copyfile(source, target)
            copied.append(target)
    return copied


#: the Hub datasets the sample comes from
OASST1_DATASET, C4_DATASET = "OpenAssistant/oasst1", "allenai/c4"
#: c4 documents fetched: the sample's size
SAMPLE_DOCUMENTS = 1000
HOW_TO_PROVIDE = (
    "no raw data: put oasst1_messages.parquet and c4_en_documents.parquet in {raw_dir} "
    "(docs/environments.md, 'Offline data'), or run where the Hugging Face Hub is reachable"
)


def missing_exports(raw_dir: Path) -> list[str]:
    return [name for name in SAMPLE_FILES.values() if not (raw_dir / name).is_file()]


def fetch_sample(
    raw_dir: Path, oasst1: str = OASST1_DATASET, c4: str = C4_DATASET, documents: int = SAMPLE_DOCUMENTS
) -> list[Path]:
    """Download the sample the offline environment reads, in the Hub's record format: oasst1's
    English validation messages, and the first ``documents`` c4 ``en`` records (streamed, so only
    those are read). Writes only the files that are missing."""
    import datasets

    raw_dir.mkdir(parents=True, exist_ok=True)
    written = []
    oasst1_path, c4_path = (raw_dir / name for name in SAMPLE_FILES.values())
    if not oasst1_path.is_file():
        messages = datasets.load_dataset(oasst1, split="validation").filter(lambda row: row["lang"] == "en")
        messages.to_pandas().to_parquet(oasst1_path)
        written.append(oasst1_path)
    if not c4_path.is_file():
        stream = datasets.load_dataset(c4, "en", split="train", streaming=True)
        pd.DataFrame.from_records(list(stream.take(documents))).to_parquet(c4_path)
        written.append(c4_path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = Path.cwd()
    parser.add_argument("--sample-dir", type=Path, default=default_sample_dir(root))
    parser.add_argument("--raw-dir", type=Path, default=root / "data" / "01_raw")
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--fetch", action="store_true", help="fetch what is missing from the Hub")
    parser.add_argument("--oasst1-dataset", default=OASST1_DATASET, help="a Hub id or a local copy of one")
    parser.add_argument("--c4-dataset", default=C4_DATASET, help="a Hub id or a local copy of one")
    args = parser.parse_args(argv)
    if args.sample_dir.is_dir():
        for path in stage_sample_data(args.sample_dir, args.raw_dir, args.overwrite):
            print(f"staged sample export {path}")
    if args.fetch and missing_exports(args.raw_dir):
        print(f"fetching the sample from the Hub ({args.oasst1_dataset}, {args.c4_dataset}) into {args.raw_dir}")
        try:
            for path in fetch_sample(args.raw_dir, args.oasst1_dataset, args.c4_dataset):
                print(f"fetched {path}")
        except Exception as error:  # any failure to reach or read the Hub ends in the same advice
            print(f"{HOW_TO_PROVIDE.format(raw_dir=args.raw_dir)} (the Hub: {type(error).__name__})")
            return 1
    missing = missing_exports(args.raw_dir)
    if missing and (args.fetch or not args.quiet):
        print(HOW_TO_PROVIDE.format(raw_dir=args.raw_dir))
        return 1 if args.fetch else 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
