"""Build snapshots: the reference digits dataset, or a user's CSV or Parquet table.

Registration validates everything before any work starts and refuses with a
message naming the problem: a missing label column, NaN or infinite features,
fewer than two classes, a class too small to split, non-numeric features that
are not declared categorical, duplicate ids.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from services.platform.datasets.errors import DatasetError
from services.platform.datasets.snapshot import DatasetSnapshot

_EXAMPLES = 5


@dataclass(frozen=True)
class SplitSpec:
    """How rows are split: test first, then validation out of the rest."""

    test_fraction: float = 0.2
    validation_fraction: float = 0.2
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("test_fraction", "validation_fraction"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise DatasetError(f"{name} must be between 0 and 1, not {value}")
        if not 0 <= self.seed < 2**32:
            raise DatasetError(f"seed must be in [0, 2**32), not {self.seed}")

    @property
    def min_class_rows(self) -> int:
        """Return the fewest rows a class needs to appear in every split."""
        smallest = min(
            self.test_fraction, (1 - self.test_fraction) * self.validation_fraction
        )
        return max(3, math.ceil(1 / smallest))


def digits_recipe(split: SplitSpec | None = None) -> str:
    """Return what :func:`digits` builds its snapshot from, without building it.

    The recipe names the data (scikit-learn's loader and version), the
    split and the code that builds snapshots (a hash of its modules), so
    the same recipe always gives the same snapshot: one stored under its
    recipe can be found again without importing scikit-learn (over a second
    of a fresh process's time), and a change to any of them builds anew.
    """
    from importlib.metadata import version

    from services.platform.datasets import snapshot

    code = hashlib.sha256()
    for module in (__file__, snapshot.__file__):
        code.update(Path(module).read_bytes())
    spec = split or SplitSpec()
    return (
        f"sklearn.datasets.load_digits, scikit-learn {version('scikit-learn')}, "
        f"{spec}, built by code {code.hexdigest()[:16]}"
    )


def digits(split: SplitSpec | None = None) -> DatasetSnapshot:
    """Return scikit-learn's digits (1797 x 64, 10 classes) as a snapshot.

    The data ship with scikit-learn; nothing is downloaded.
    """
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return from_arrays(
        name="digits",
        features=bunch.data,
        labels=bunch.target,
        feature_names=list(bunch.feature_names),
        split=split or SplitSpec(),
        metadata={"source": "sklearn.datasets.load_digits"},
    )


def read_table(
    path: Path,
    label_column: str,
    name: str,
    categorical: Sequence[str] = (),
    id_column: str | None = None,
    split: SplitSpec | None = None,
) -> DatasetSnapshot:
    """Read a CSV or Parquet table into a validated snapshot.

    Raises:
        DatasetError: the file or its content is refused; the message names
            the column and shows example rows where it helps.
    """
    frame = _load_frame(path)
    if frame.empty:
        raise DatasetError(f"{path} has no rows")
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    _require_columns(columns, [label_column], "label column")
    _require_columns(columns, list(categorical), "categorical column")

    row_ids = None
    if id_column is not None:
        _require_columns(columns, [id_column], "id column")
        row_ids = _unique_ids(frame[id_column], id_column)
        frame = frame.drop(columns=[id_column])

    labels = frame.pop(label_column)
    missing = labels.isna().to_numpy()
    if missing.any():
        raise DatasetError(
            f"label column '{label_column}' has {int(missing.sum())} missing "
            f"value(s) (rows {_rows(missing)})"
        )
    features, categorical_indices, categories = _encode_features(frame, categorical)
    return from_arrays(
        name=name,
        features=features,
        labels=labels.to_numpy(),
        feature_names=list(frame.columns),
        categorical_features=categorical_indices,
        row_ids=row_ids,
        split=split or SplitSpec(),
        metadata={"source": path.name, "categories": categories},
    )


def from_arrays(
    name: str,
    features: Any,
    labels: Any,
    feature_names: list[str] | None = None,
    categorical_features: list[int] | None = None,
    row_ids: list[str] | None = None,
    split: SplitSpec | None = None,
    metadata: dict[str, Any] | None = None,
) -> DatasetSnapshot:
    """Validate arrays, split them, and return the snapshot.

    Raises:
        DatasetError: shapes disagree, a feature is NaN or infinite, there are
            fewer than two classes, or a class is too small to split.
    """
    _check_name(name)
    split = split or SplitSpec()
    x = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
    raw_labels = np.asarray(labels)
    if x.ndim != 2 or raw_labels.ndim != 1 or x.shape[0] != raw_labels.shape[0]:
        raise DatasetError(
            f"features {x.shape} and labels {raw_labels.shape} do not describe "
            "the same rows"
        )
    names = feature_names or [f"f{i}" for i in range(x.shape[1])]
    _check_finite(x, names)

    class_names, codes = np.unique(raw_labels.astype(str), return_inverse=True)
    if len(class_names) < 2:
        raise DatasetError(
            f"the labels have {len(class_names)} class(es) "
            f"({', '.join(map(repr, class_names.tolist()))}); at least two are needed"
        )
    counts = np.bincount(codes)
    small = [(class_names[i], int(c)) for i, c in enumerate(counts)]
    small = [(n, c) for n, c in small if c < split.min_class_rows]
    if small:
        listed = ", ".join(f"'{n}' has {c}" for n, c in small[:_EXAMPLES])
        raise DatasetError(
            f"class(es) too small to split: {listed} row(s); with test_fraction "
            f"{split.test_fraction} and validation_fraction "
            f"{split.validation_fraction} each class needs at least "
            f"{split.min_class_rows}"
        )

    return DatasetSnapshot(
        name=name,
        features=x,
        labels=codes.astype(np.int64),
        split=_split(codes, split),
        feature_names=names,
        class_names=[str(c) for c in class_names],
        categorical_features=categorical_features or [],
        row_ids=row_ids,
        split_seed=split.seed,
        metadata=metadata or {},
    )


def _split(codes: np.ndarray, spec: SplitSpec) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(codes), dtype=np.int64)
    rest, test = train_test_split(
        rows, test_size=spec.test_fraction, stratify=codes, random_state=spec.seed
    )
    pool, validation = train_test_split(
        rest,
        test_size=spec.validation_fraction,
        stratify=codes[rest],
        random_state=spec.seed,
    )
    return {
        "pool": np.sort(pool),
        "validation": np.sort(validation),
        "test": np.sort(test),
    }


def _load_frame(path: Path) -> Any:
    import pandas as pd

    if not path.is_file():
        raise DatasetError(f"{path} does not exist or is not a file")
    readers = {".csv": pd.read_csv, ".parquet": pd.read_parquet}
    reader = readers.get(path.suffix.lower())
    if reader is None:
        raise DatasetError(
            f"{path.name}: unsupported file type '{path.suffix}'; use .csv or .parquet"
        )
    try:
        return reader(path)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path.name} could not be read: {exc}") from exc


def _require_columns(columns: list[str], wanted: list[str], what: str) -> None:
    for column in wanted:
        if column not in columns:
            raise DatasetError(
                f"{what} '{column}' not found; the columns are: {', '.join(columns)}"
            )


def _unique_ids(ids: Any, column: str) -> list[str]:
    text = ids.astype(str)
    duplicated = text[text.duplicated(keep=False)]
    if len(duplicated):
        examples = ", ".join(sorted(set(duplicated.tolist()))[:_EXAMPLES])
        raise DatasetError(
            f"id column '{column}' has {duplicated.nunique()} duplicated value(s), "
            f"e.g. {examples}"
        )
    if ids.isna().any():
        raise DatasetError(f"id column '{column}' has missing values")
    return [str(v) for v in text.tolist()]


def _encode_features(
    frame: Any, categorical: Sequence[str]
) -> tuple[np.ndarray, list[int], dict[str, list[str]]]:
    import pandas as pd

    encoded = {}
    categories: dict[str, list[str]] = {}
    for column in frame.columns:
        values = frame[column]
        if column in categorical:
            if values.isna().any():
                raise DatasetError(
                    f"categorical feature '{column}' has missing values (rows "
                    f"{_rows(values.isna().to_numpy())})"
                )
            codes, uniques = pd.factorize(values.astype(str), sort=True)
            encoded[column] = codes.astype(np.float32)
            categories[column] = [str(u) for u in uniques]
        elif pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(
            values
        ):
            encoded[column] = values.to_numpy(dtype=np.float32, na_value=np.nan)
        else:
            example = (
                values.dropna().astype(str).iloc[0] if values.notna().any() else ""
            )
            raise DatasetError(
                f"feature '{column}' is not numeric (e.g. {example!r}); declare it "
                "categorical or encode it"
            )
    indices = [list(frame.columns).index(c) for c in categorical]
    stacked = np.column_stack([encoded[c] for c in frame.columns]).astype(np.float32)
    return stacked, indices, categories


def _check_finite(x: np.ndarray, names: list[str]) -> None:
    bad = ~np.isfinite(x)
    if not bad.any():
        return
    columns = np.flatnonzero(bad.any(axis=0))
    column = int(columns[0])
    rows = bad[:, column]
    raise DatasetError(
        f"feature '{names[column]}' has {int(rows.sum())} NaN or infinite value(s) "
        f"(rows {_rows(rows)})"
        + (f"; {len(columns) - 1} other feature(s) too" if len(columns) > 1 else "")
    )


def _check_name(name: str) -> None:
    import re

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,62}", name):
        raise DatasetError(
            f"dataset name {name!r} must be 1-63 lower-case letters, digits, '-' "
            "or '_', starting with a letter or digit"
        )


def _rows(mask: np.ndarray) -> str:
    rows = np.flatnonzero(mask)
    shown = ", ".join(str(int(r)) for r in rows[:_EXAMPLES])
    return shown + (", ..." if len(rows) > _EXAMPLES else "")
