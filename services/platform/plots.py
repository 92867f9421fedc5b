"""Figures the services log to MLflow and write into reports.

Figures are built as ``matplotlib.figure.Figure`` objects, without pyplot:
no global figure registry, so services may draw in any thread, and nothing
to close but the figure itself.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np


def confusion_figure(matrix: np.ndarray, class_names: list[str], title: str) -> Any:
    """Return a matplotlib figure of a confusion matrix with its non-zero counts.

    Zero cells (most of a good model's matrix) stay blank, and the margins
    are sized from the longest class name instead of by a layout pass: text
    is what costs in drawing this figure, and the evaluator draws two while
    fits run beside it.
    """
    from matplotlib.figure import Figure

    size = max(4.0, 0.5 * len(class_names) + 2)
    figure = Figure(figsize=(size, size))
    axes = figure.add_subplot()
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    axes.set_yticks(range(len(class_names)), class_names)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axes.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                color="white" if count > threshold else "black",
                fontsize=8,
            )
    # About 0.08 inch per character of a 10-point label, plus the axis title.
    label_in = 0.08 * max((len(name) for name in class_names), default=1)
    figure.subplots_adjust(
        left=min(0.45, (0.55 + label_in) / size),
        bottom=min(0.45, (0.5 + 0.75 * label_in) / size),
        right=1 - 0.2 / size,
        top=1 - 0.45 / size,
    )
    return figure


def close_figure(figure: Any) -> None:
    """Release a figure's drawing state."""
    figure.clear()


def png_bytes(figure: Any) -> bytes:
    """Render a figure to PNG and release it."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110)
    close_figure(figure)
    return buffer.getvalue()


def learning_curves(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]],
    baseline: tuple[float, float] | None,
    title: str,
) -> Any:
    """Return a figure of mean test accuracy per labeled count, with +-1 sd bands.

    Args:
        curves: per strategy, (labeled counts, mean accuracy, standard deviation).
        baseline: the full-data baseline's mean and standard deviation, if any.
    """
    from matplotlib.figure import Figure

    figure = Figure(figsize=(8, 5), layout="tight")
    axes = figure.add_subplot()
    for name, (labels, mean, spread) in sorted(curves.items()):
        (line,) = axes.plot(labels, mean, marker="o", markersize=3, label=name)
        axes.fill_between(
            labels, mean - spread, mean + spread, color=line.get_color(), alpha=0.15
        )
    if baseline is not None:
        level, band = baseline
        axes.axhline(level, color="black", linestyle="--", label="full-data baseline")
        axes.axhspan(level - band, level + band, color="black", alpha=0.08)
    axes.set_xlabel("labeled rows")
    axes.set_ylabel("test accuracy")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right")
    return figure
