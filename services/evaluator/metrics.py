"""Classification scores computed from one confusion matrix.

Every score the evaluator reports is a function of the confusion matrix, so
it is built once and the rest is arithmetic on a classes x classes array.
The definitions are scikit-learn's with ``labels`` set to every class and
``zero_division=0`` (a class never predicted has precision 0, a class absent
from the truth has recall 0, and both still count in the macro averages);
the unit tests hold them to scikit-learn's own functions. Scoring this way
costs microseconds where scikit-learn's validation of its inputs costs tens
of milliseconds a call, on a CPU the fits running beside the evaluator share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Scores:
    """One split's scores: the averages, and the per-class detail."""

    n_rows: int
    accuracy: float
    f1_macro: float
    f1_weighted: float
    precision_macro: float
    recall_macro: float
    confusion_matrix: list[list[int]]
    per_class: dict[str, Any]


def confusion_matrix(
    truth: np.ndarray, predicted: np.ndarray, n_classes: int
) -> np.ndarray:
    """Return counts[true class, predicted class] over ``n_classes`` classes.

    Raises:
        ValueError: a label outside ``0 .. n_classes - 1``, or arrays of
            different lengths.
    """
    truth = np.asarray(truth, dtype=np.int64)
    predicted = np.asarray(predicted, dtype=np.int64)
    if truth.shape != predicted.shape:
        raise ValueError(f"{truth.size} true labels but {predicted.size} predictions")
    for name, labels in (("true", truth), ("predicted", predicted)):
        if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
            raise ValueError(
                f"{name} labels reach {int(labels.min())}..{int(labels.max())}; "
                f"expected 0..{n_classes - 1}"
            )
    flat = np.bincount(truth * n_classes + predicted, minlength=n_classes**2)
    return flat.reshape(n_classes, n_classes)


def scores(truth: np.ndarray, predicted: np.ndarray, class_names: list[str]) -> Scores:
    """Return the scores of ``predicted`` against ``truth`` (class indices)."""
    matrix = confusion_matrix(truth, predicted, len(class_names))
    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted_counts = matrix.sum(axis=0)
    precision = _ratio(hits, predicted_counts)
    recall = _ratio(hits, support)
    f1 = _ratio(2 * hits, support + predicted_counts)
    total = int(support.sum())
    weights = support / total if total else np.zeros_like(hits)
    per_class: dict[str, Any] = {
        name: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1-score": float(f1[i]),
            "support": float(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    accuracy = float(hits.sum() / total) if total else 0.0
    per_class["accuracy"] = accuracy
    per_class["macro avg"] = {
        "precision": float(precision.mean()),
        "recall": float(recall.mean()),
        "f1-score": float(f1.mean()),
        "support": float(total),
    }
    per_class["weighted avg"] = {
        "precision": float(weights @ precision),
        "recall": float(weights @ recall),
        "f1-score": float(weights @ f1),
        "support": float(total),
    }
    return Scores(
        n_rows=total,
        accuracy=accuracy,
        f1_macro=float(f1.mean()),
        f1_weighted=float(weights @ f1),
        precision_macro=float(precision.mean()),
        recall_macro=float(recall.mean()),
        confusion_matrix=matrix.tolist(),
        per_class=per_class,
    )


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Return numerator / denominator, 0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
