"""Uncertainty sampling: select the rows the model is least sure of.

Provides :class:`UncertaintyStrategy`, which scores the pool one chunk at a
time and keeps only the best candidates, and the ``entropy``, ``margin`` and
``least_confident`` strategies built on it.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable

import numpy as np

from services.sampler.strategies.base import (
    QueryStrategy,
    UnlabeledPool,
    register,
    tie_keys,
)


def top_scored_rows(
    pool: UnlabeledPool,
    k: int,
    seed: int,
    score: Callable[[np.ndarray], np.ndarray],
) -> np.ndarray:
    """Return the ``k`` pool rows that score highest, best first.

    Equal scores are ordered by :func:`tie_keys`, so the result depends on the
    seed but not on ``pool.chunk_rows``. Memory stays O(k + chunk_rows): only
    the best ``k`` rows so far are kept between chunks.
    """
    model = pool.model
    if model is None:
        raise ValueError("the pool has no model to score its rows with")

    best_rows = np.empty(0, dtype=np.int64)
    best_scores = np.empty(0, dtype=np.float64)
    for rows, block in pool.chunks():
        probabilities = np.asarray(model.predict_proba(block), dtype=np.float64)
        if probabilities.ndim != 2 or probabilities.shape[0] != rows.size:
            raise ValueError(
                f"predict_proba returned shape {probabilities.shape} "
                f"for {rows.size} rows; expected ({rows.size}, n_classes)"
            )
        scores = np.asarray(score(probabilities), dtype=np.float64)
        best_rows, best_scores = _best(
            np.concatenate((best_rows, rows)),
            np.concatenate((best_scores, scores)),
            k,
            seed,
        )
    return best_rows


def _best(
    rows: np.ndarray, scores: np.ndarray, k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    # A NaN score would compare as largest in np.partition; rank it last.
    scores = np.where(np.isnan(scores), -np.inf, scores)

    # Only rows at or above the k-th largest score can be in the top k; sorting
    # just those keeps the per-chunk cost near O(chunk_rows).
    if rows.size > k:
        threshold = np.partition(scores, rows.size - k)[rows.size - k]
        keep = scores >= threshold
        rows, scores = rows[keep], scores[keep]

    # lexsort's last key is the primary one: score descending, then tie key.
    order = np.lexsort((tie_keys(rows, seed), -scores))[:k]
    return rows[order], scores[order]


class UncertaintyStrategy(QueryStrategy):
    """Select the rows whose class probabilities score as most uncertain.

    Subclasses set ``name`` and implement only :meth:`score`.
    """

    @abstractmethod
    def score(self, probabilities: np.ndarray) -> np.ndarray:
        """Return one score per row of ``probabilities``; higher is more informative."""

    def _select(self, pool: UnlabeledPool, batch_size: int, seed: int) -> np.ndarray:
        return top_scored_rows(pool, batch_size, seed, self.score)


@register
class EntropyStrategy(UncertaintyStrategy):
    """Prefer rows whose predicted class distribution has the highest entropy."""

    name = "entropy"

    def score(self, probabilities: np.ndarray) -> np.ndarray:
        """Return the Shannon entropy of each row, in nats."""
        # Clipping keeps log(0) finite; 0 * log(tiny) is 0, the limit of p log p.
        logs = np.log(np.clip(probabilities, np.finfo(np.float64).tiny, None))
        return np.asarray(-(probabilities * logs).sum(axis=1))


@register
class MarginStrategy(UncertaintyStrategy):
    """Prefer rows whose two most likely classes are closest in probability."""

    name = "margin"

    def score(self, probabilities: np.ndarray) -> np.ndarray:
        """Return minus the gap between the two highest probabilities of each row."""
        if probabilities.shape[1] < 2:
            # One class: every row is equally certain.
            return np.zeros(probabilities.shape[0])
        top_two = np.partition(probabilities, -2, axis=1)[:, -2:]
        return np.asarray(top_two[:, 0] - top_two[:, 1])


@register
class LeastConfidentStrategy(UncertaintyStrategy):
    """Prefer rows whose most likely class has the lowest probability."""

    name = "least_confident"

    def score(self, probabilities: np.ndarray) -> np.ndarray:
        """Return one minus the highest probability of each row."""
        return np.asarray(1.0 - probabilities.max(axis=1))
