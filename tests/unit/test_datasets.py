"""Dataset registration refuses bad data naming the problem; snapshots are stable."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.platform.datasets import DatasetError, SplitSpec, digits, read_table
from services.platform.datasets.registration import from_arrays


def _table(tmp_path: Path, frame: pd.DataFrame, suffix: str = ".csv") -> Path:
    path = tmp_path / f"data{suffix}"
    if suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_parquet(path, index=False)
    return path


def _frame(n: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(n)],
            "x1": rng.normal(size=n),
            "x2": rng.normal(size=n),
            "colour": rng.choice(["red", "green"], size=n),
            "target": np.tile(["a", "b", "c"], n // 3),
        }
    )


def test_digits_has_the_reference_shape_and_split() -> None:
    snapshot = digits()

    assert snapshot.features.shape == (1797, 64)
    assert snapshot.n_classes == 10
    sizes = {name: len(rows) for name, rows in snapshot.split.items()}
    assert sizes == {"pool": 1149, "validation": 288, "test": 360}
    every = np.concatenate(list(snapshot.split.values()))
    assert np.unique(every).size == 1797


def test_same_data_gets_the_same_id_and_a_changed_value_a_new_one() -> None:
    first, again = digits(), digits()
    other_seed = digits(SplitSpec(seed=7))

    assert first.dataset_id == again.dataset_id
    assert first.dataset_id != other_seed.dataset_id


def test_csv_and_parquet_with_categoricals_and_ids_register(tmp_path: Path) -> None:
    for suffix in (".csv", ".parquet"):
        snapshot = read_table(
            _table(tmp_path, _frame(), suffix),
            "target",
            "toy",
            categorical=["colour"],
            id_column="id",
        )

        assert snapshot.feature_names == ["x1", "x2", "colour"]
        assert snapshot.categorical_features == [2]
        assert snapshot.class_names == ["a", "b", "c"]
        assert snapshot.row_ids[:2] == ["r0", "r1"]


def test_missing_label_column_is_refused_listing_the_columns(tmp_path: Path) -> None:
    path = _table(tmp_path, _frame())

    with pytest.raises(
        DatasetError, match=r"label column 'label' not found; the columns"
    ):
        read_table(path, "label", "toy", categorical=["colour"])


def test_nan_feature_is_refused_naming_column_and_rows(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[[4, 9], "x2"] = np.nan

    with pytest.raises(
        DatasetError, match=r"feature 'x2' has 2 NaN or infinite.*rows 4, 9"
    ):
        read_table(_table(tmp_path, frame), "target", "toy", ["colour"], id_column="id")


def test_infinite_feature_is_refused() -> None:
    features = np.ones((30, 2))
    features[3, 1] = math.inf

    with pytest.raises(DatasetError, match=r"feature 'f1' has 1 NaN or infinite"):
        from_arrays("toy", features, np.tile([0, 1, 2], 10))


def test_single_class_is_refused() -> None:
    with pytest.raises(DatasetError, match=r"1 class.*at least two are needed"):
        from_arrays("toy", np.ones((30, 2)), np.zeros(30))


def test_class_too_small_to_split_is_refused_with_its_count() -> None:
    labels = np.array([0] * 40 + [1] * 40 + [2] * 3)

    with pytest.raises(DatasetError, match=r"'2' has 3 row.*needs at least 7"):
        from_arrays("toy", np.ones((83, 2)), labels)


def test_undeclared_text_feature_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        DatasetError, match=r"feature 'colour' is not numeric.*categorical"
    ):
        read_table(_table(tmp_path, _frame()), "target", "toy", id_column="id")


def test_duplicate_ids_are_refused_with_examples(tmp_path: Path) -> None:
    frame = _frame()
    frame.loc[5, "id"] = "r0"

    with pytest.raises(DatasetError, match=r"id column 'id' has 1 duplicated.*r0"):
        read_table(_table(tmp_path, frame), "target", "toy", ["colour"], id_column="id")


def test_unsupported_file_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"x")

    with pytest.raises(DatasetError, match=r"unsupported file type '.xlsx'"):
        read_table(path, "target", "toy")


def test_bad_name_and_fractions_are_refused() -> None:
    with pytest.raises(DatasetError, match=r"dataset name '../x'"):
        from_arrays("../x", np.ones((30, 2)), np.tile([0, 1, 2], 10))
    with pytest.raises(DatasetError, match=r"test_fraction must be between 0 and 1"):
        SplitSpec(test_fraction=1.5)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(min_value=0, max_value=40),
    columns=st.integers(min_value=1, max_value=4),
    classes=st.integers(min_value=1, max_value=4),
    poison=st.sampled_from([None, math.nan, math.inf, -math.inf]),
    seed=st.integers(min_value=0, max_value=1000),
)
def test_registration_either_splits_every_row_once_or_refuses_clearly(
    rows: int, columns: int, classes: int, poison: float | None, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, columns))
    if poison is not None and rows:
        features[rng.integers(rows), rng.integers(columns)] = poison
    labels = rng.integers(classes, size=rows)

    try:
        snapshot = from_arrays("fuzz", features, labels, split=SplitSpec(seed=seed))
    except DatasetError as exc:
        assert str(exc)
        return
    every = np.sort(np.concatenate(list(snapshot.split.values())))
    assert np.array_equal(every, np.arange(rows))
    assert np.isfinite(snapshot.features).all()
    assert snapshot.n_classes >= 2
