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

from typing import Any

import numpy as np

from contracts import SplitMetrics


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


def scores(
    truth: np.ndarray, predicted: np.ndarray, class_names: list[str]
) -> tuple[SplitMetrics, dict[str, Any]]:
    """Return the scores of ``predicted`` against ``truth`` (class indices).

    The detail holds the metrics, the confusion matrix and the per-class
    report in scikit-learn's ``classification_report(output_dict=True)`` form.
    """
    matrix = confusion_matrix(truth, predicted, len(class_names))
    hits = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1)
    predicted_counts = matrix.sum(axis=0)
    by_class = {
        "precision": _ratio(hits, predicted_counts),
        "recall": _ratio(hits, support),
        "f1-score": _ratio(2 * hits, support + predicted_counts),
    }
    total = int(support.sum())
    macro = {name: float(values.mean()) for name, values in by_class.items()}
    # Weighted by support and divided once, as scikit-learn averages: summing
    # pre-divided weights can land a perfect score at 1.0000000000000002.
    weighted = {
        name: float(support @ values / total) if total else 0.0
        for name, values in by_class.items()
    }
    accuracy = float(hits.sum() / total) if total else 0.0
    per_class: dict[str, Any] = {
        name: {
            **{score: float(values[i]) for score, values in by_class.items()},
            "support": float(support[i]),
        }
        for i, name in enumerate(class_names)
    }
    per_class["accuracy"] = accuracy
    per_class["macro avg"] = {**macro, "support": float(total)}
    per_class["weighted avg"] = {**weighted, "support": float(total)}
    metrics = SplitMetrics(
        n_rows=total,
        accuracy=accuracy,
        f1_macro=macro["f1-score"],
        f1_weighted=weighted["f1-score"],
        precision_macro=macro["precision"],
        recall_macro=macro["recall"],
    )
    detail = {
        "metrics": metrics.model_dump(),
        "confusion_matrix": matrix.tolist(),
        "per_class": per_class,
    }
    return metrics, detail


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """Return numerator / denominator, 0 where the denominator is 0."""
    out = np.zeros(numerator.shape, dtype=np.float64)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out
