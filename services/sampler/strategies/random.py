"""The ``random`` strategy: a uniform sample of the pool, the baseline to beat."""

from __future__ import annotations

import numpy as np

from services.sampler.strategies.base import QueryStrategy, UnlabeledPool, register


@register
class RandomStrategy(QueryStrategy):
    """Select rows uniformly at random, without replacement, from the seed alone."""

    name = "random"
    needs_model = False

    def _select(self, pool: UnlabeledPool, batch_size: int, seed: int) -> np.ndarray:
        # Only the row indices are drawn from, never the features, so the
        # selection cannot depend on how the pool is chunked.
        generator = np.random.Generator(np.random.PCG64(seed))
        chosen = generator.choice(pool.rows, size=batch_size, replace=False)
        return np.asarray(chosen, dtype=np.int64)
