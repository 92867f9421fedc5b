"""The evaluator's scores agree with scikit-learn's on any labels."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from services.evaluator.metrics import confusion_matrix as our_confusion_matrix
from services.evaluator.metrics import scores


@st.composite
def labelled(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, int]:
    """Draw (truth, predicted, n_classes), classes often absent from either."""
    n_classes = draw(st.integers(2, 12))
    n_rows = draw(st.integers(1, 60))
    label = st.integers(0, n_classes - 1)
    truth = draw(st.lists(label, min_size=n_rows, max_size=n_rows))
    predicted = draw(st.lists(label, min_size=n_rows, max_size=n_rows))
    return np.array(truth), np.array(predicted), n_classes


@given(labelled())
def test_scores_equal_scikit_learns_with_every_class_and_zero_division_0(
    case: tuple[np.ndarray, np.ndarray, int],
) -> None:
    truth, predicted, n_classes = case
    names = [f"class {i}" for i in range(n_classes)]
    labels = list(range(n_classes))
    found, detail = scores(truth, predicted, names)

    def averaged(metric, average: str) -> float:  # type: ignore[no-untyped-def]
        return metric(truth, predicted, average=average, labels=labels, zero_division=0)

    assert found.n_rows == truth.size
    assert found.accuracy == pytest.approx(accuracy_score(truth, predicted))
    assert found.f1_macro == pytest.approx(averaged(f1_score, "macro"))
    assert found.f1_weighted == pytest.approx(averaged(f1_score, "weighted"))
    assert found.precision_macro == pytest.approx(averaged(precision_score, "macro"))
    assert found.recall_macro == pytest.approx(averaged(recall_score, "macro"))
    assert detail["metrics"] == found.model_dump()
    assert detail["confusion_matrix"] == (
        confusion_matrix(truth, predicted, labels=labels).tolist()
    )
    expected = classification_report(
        truth,
        predicted,
        labels=labels,
        target_names=names,
        output_dict=True,
        zero_division=0,
    )
    assert detail["per_class"].keys() == expected.keys()
    for key, value in expected.items():
        assert detail["per_class"][key] == pytest.approx(value), key


def test_a_label_outside_the_classes_is_refused_naming_the_range() -> None:
    with pytest.raises(
        ValueError, match=r"predicted labels reach 0\.\.3; expected 0\.\.2"
    ):
        our_confusion_matrix(np.array([0, 1]), np.array([0, 3]), 3)
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        our_confusion_matrix(np.array([0, 1]), np.array([0]), 3)


def test_perfect_predictions_score_exactly_one() -> None:
    # Summing support-weighted ones class by class once gave 1.0000000000000002,
    # which the metrics' bounds refuse.
    truth = np.array([3, 2, 1, 0, 3, 0, 0, 0, 0, 1, 4, 0, 0, 1, 3, 1, 4, 4, 0, 4])
    found, _ = scores(truth, truth.copy(), [f"class {i}" for i in range(5)])

    assert (found.accuracy, found.f1_macro, found.f1_weighted) == (1.0, 1.0, 1.0)
