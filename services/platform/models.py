"""CatBoost models as bytes, and scoring that handles categorical features.

Models travel as CatBoost's own binary format (``.cbm``) in the object
store. Every model is fitted with the dataset's full list of classes, so its
probability columns line up with the dataset's class indices even when a
round's labeled rows do not show every class yet.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from contracts import CatBoostParams


def make_pool(
    features: np.ndarray, categorical: list[int], labels: np.ndarray | None = None
) -> Any:
    """Return a CatBoost Pool; categorical columns become integer codes."""
    from catboost import Pool

    if not categorical:
        return Pool(np.ascontiguousarray(features), label=labels)
    import pandas as pd

    frame = pd.DataFrame(np.asarray(features))
    for column in categorical:
        frame[column] = frame[column].astype(np.int64)
    return Pool(frame, label=labels, cat_features=categorical)


def new_classifier(
    params: CatBoostParams, n_classes: int, seed: int, thread_count: int
) -> Any:
    """Return an unfitted classifier with the platform's fixed settings."""
    from catboost import CatBoostClassifier

    return CatBoostClassifier(
        iterations=params.iterations,
        learning_rate=params.learning_rate,
        depth=params.depth,
        l2_leaf_reg=params.l2_leaf_reg,
        random_seed=seed,
        thread_count=thread_count,
        loss_function="MultiClass" if n_classes > 2 else "Logloss",
        class_names=list(range(n_classes)),
        verbose=False,
        allow_writing_files=False,
    )


def to_bytes(model: Any) -> bytes:
    """Serialise a fitted model to CatBoost's binary format."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.cbm"
        model.save_model(str(path))
        return path.read_bytes()


def from_bytes(data: bytes) -> Any:
    """Load a model serialised by :func:`to_bytes`."""
    from catboost import CatBoostClassifier

    return CatBoostClassifier().load_model(blob=data)


class CatBoostScorer:
    """Class probabilities of a model, in dataset class order."""

    def __init__(self, model: Any, categorical: list[int], thread_count: int = 1):
        self.model = model
        self.categorical = categorical
        self.thread_count = thread_count

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Return an (n_rows, n_classes) array of probabilities."""
        pool = make_pool(features, self.categorical)
        probabilities: np.ndarray = self.model.predict_proba(
            pool, thread_count=self.thread_count
        )
        return probabilities
