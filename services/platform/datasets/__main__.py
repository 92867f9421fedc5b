"""Register a dataset in the object store: ``python -m services.platform.datasets``.

    python -m services.platform.datasets digits
    python -m services.platform.datasets table FILE --label COLUMN --name NAME \\
        [--categorical COLUMN ...] [--id-column COLUMN] [--test-fraction F] \\
        [--validation-fraction F] [--seed N]

Prints the dataset reference (JSON) that flows take as their dataset
parameter. Reads the S3_* variables (after `make up`: `.state/stack.env`).
A refused dataset exits 2 with the reason; nothing is stored.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from services.platform.datasets.errors import DatasetError
from services.platform.datasets.registration import SplitSpec, digits, read_table
from services.platform.datasets.store import DatasetStore
from services.platform.errors import ConfigurationError
from services.platform.objectstore import open_object_store
from services.platform.settings import S3Settings, load_settings


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, build the snapshot, store it, print its reference."""
    parser = argparse.ArgumentParser(
        prog="python -m services.platform.datasets",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    kinds.add_parser("digits", help="scikit-learn's digits, the reference dataset")
    table = kinds.add_parser("table", help="a CSV or Parquet file")
    table.add_argument("file", type=Path)
    table.add_argument("--label", required=True, help="the label column")
    table.add_argument("--name", required=True, help="lower-case dataset name")
    table.add_argument("--categorical", action="append", default=[])
    table.add_argument("--id-column")
    for parsed in (kinds.choices["digits"], table):
        parsed.add_argument("--test-fraction", type=float, default=0.2)
        parsed.add_argument("--validation-fraction", type=float, default=0.2)
        parsed.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    try:
        split = SplitSpec(args.test_fraction, args.validation_fraction, args.seed)
        if args.kind == "digits":
            snapshot = digits(split)
        else:
            snapshot = read_table(
                args.file,
                args.label,
                args.name,
                categorical=args.categorical,
                id_column=args.id_column,
                split=split,
            )
        s3 = load_settings(S3Settings)
    except (DatasetError, ConfigurationError) as exc:
        sys.stderr.write(f"refused: {exc}\n")
        return 2
    store = DatasetStore(
        open_object_store(s3), s3.datasets_bucket, Path(".state/cache").resolve()
    )
    sys.stdout.write(store.put(snapshot).model_dump_json(indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
