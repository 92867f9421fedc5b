"""The ``margin_kmeans`` strategy: uncertain rows, spread across feature space.

Uncertainty alone tends to pick near-duplicates from one region of the
decision boundary; clustering the most uncertain candidates and taking one row
per cluster keeps the batch diverse.
"""

from __future__ import annotations

import warnings
from typing import ClassVar

import numpy as np

from services.sampler.strategies.base import UnlabeledPool, register
from services.sampler.strategies.uncertainty import MarginStrategy, top_scored_rows


@register
class MarginKMeansStrategy(MarginStrategy):
    """Cluster the best margin candidates; take the row nearest each centroid.

    The candidates are the ``candidate_factor * batch_size`` rows with the
    smallest margin (or the whole pool, if smaller); they are clustered into
    ``batch_size`` groups, and clusters left empty or duplicated are made up
    for with the next-best margin candidates. Memory is O(candidates *
    n_features).

    Warning:
        KMeans costs O(candidates * batch_size * n_features) per iteration,
        which grows with the square of the batch size: batches of tens of
        thousands of rows take minutes. Use ``margin`` for batches that large.
    """

    name = "margin_kmeans"
    candidate_factor: ClassVar[int] = 10
    n_init: ClassVar[int] = 1

    def _select(self, pool: UnlabeledPool, batch_size: int, seed: int) -> np.ndarray:
        n_candidates = min(len(pool), self.candidate_factor * batch_size)
        candidates = top_scored_rows(pool, n_candidates, seed, self.score)
        if n_candidates == batch_size:
            return candidates

        picks = self._nearest_to_centroids(
            _read_in_place(pool, candidates), batch_size, seed
        )

        chosen: np.ndarray = candidates[picks]
        if chosen.size < batch_size:
            rest = np.delete(candidates, picks)[: batch_size - chosen.size]
            chosen = np.concatenate((chosen, rest))
        return chosen

    def _nearest_to_centroids(
        self, features: np.ndarray, n_clusters: int, seed: int
    ) -> np.ndarray:
        """Return the positions of the row nearest each centroid, ascending."""
        # Imported here: the strategy registry is also read by the flows to
        # validate parameters, which should not pay for scikit-learn.
        from sklearn.cluster import KMeans
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            # Repeated feature vectors can yield fewer distinct clusters than
            # asked for; the caller fills the batch up, so the warning is noise.
            warnings.simplefilter("ignore", ConvergenceWarning)
            kmeans = KMeans(
                n_clusters=n_clusters, random_state=seed, n_init=self.n_init
            ).fit(features)
        labels = kmeans.labels_
        distances = ((features - kmeans.cluster_centers_[labels]) ** 2).sum(axis=1)

        # Rows are in margin order, so position breaks a distance tie in favour
        # of the more uncertain row.
        order = np.lexsort((np.arange(labels.size), distances, labels))
        _, first_of_cluster = np.unique(labels[order], return_index=True)
        return np.sort(order[first_of_cluster])


def _read_in_place(pool: UnlabeledPool, rows: np.ndarray) -> np.ndarray:
    """Return the features of ``rows`` in the order given, read in row order."""
    # Ascending reads keep a memory-mapped file's access sequential.
    ascending = np.argsort(rows, kind="stable")
    features = np.empty((rows.size, pool.features.shape[1]), dtype=np.float64)
    features[ascending] = pool.read(rows[ascending])
    return features
