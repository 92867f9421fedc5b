"""The query-strategy contract, the unlabeled pool it reads, and the registry.

A strategy is one class that subclasses :class:`QueryStrategy` and is
decorated with :func:`register`; the sampler looks it up by name with
:func:`get_strategy`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, Protocol, TypeVar, final

import numpy as np

from services.sampler.errors import (
    BatchTooLargeError,
    EmptyPoolError,
    UnknownStrategyError,
)


class Scorer(Protocol):
    """A fitted classifier; a ``catboost.CatBoostClassifier`` satisfies it."""

    def predict_proba(self, X: np.ndarray, /) -> np.ndarray:
        """Return class probabilities, shape (n, n_classes), rows summing to 1."""
        ...


@dataclass(frozen=True, eq=False)
class UnlabeledPool:
    """The unlabeled rows of a dataset, the features of all rows, and a model.

    Attributes:
        rows: Indices of the unlabeled rows into ``features`` (unique, ascending).
        features: Every row of the dataset, 2-D; may be a ``np.memmap``, and is
            only ever read ``chunk_rows`` rows at a time.
        model: The classifier whose probabilities score the rows, if any.
        chunk_rows: Rows read and scored at a time; bounds the memory used.
    """

    rows: np.ndarray
    features: np.ndarray
    model: Scorer | None = None
    chunk_rows: int = 50_000

    def __post_init__(self) -> None:
        """Check the shapes and the row indices; store the rows as int64."""
        rows = np.asarray(self.rows)
        if rows.ndim != 1 or not np.issubdtype(rows.dtype, np.integer):
            raise ValueError(
                f"rows must be a 1-D integer array, got {rows.ndim}-D {rows.dtype}"
            )
        if self.features.ndim != 2:
            raise ValueError(f"features must be 2-D, got {self.features.ndim}-D")
        if self.chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, got {self.chunk_rows}")
        rows = rows.astype(np.int64, copy=False)
        if rows.size and (rows[0] < 0 or rows[-1] >= self.total_rows):
            raise ValueError(
                f"rows must index the {self.total_rows} dataset rows, "
                f"got {rows[0]}..{rows[-1]}"
            )
        if rows.size > 1 and not bool(np.all(rows[1:] > rows[:-1])):
            raise ValueError("rows must be unique and ascending")
        object.__setattr__(self, "rows", rows)

    @property
    def total_rows(self) -> int:
        """Return the number of dataset rows, labeled or not."""
        return int(self.features.shape[0])

    def __len__(self) -> int:
        """Return the number of unlabeled rows."""
        return int(self.rows.size)

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield each run of ``chunk_rows`` rows with their features as floats."""
        for start in range(0, self.rows.size, self.chunk_rows):
            rows = self.rows[start : start + self.chunk_rows]
            yield rows, self.read(rows)

    def read(self, rows: np.ndarray) -> np.ndarray:
        """Return the features of ``rows`` as a C-contiguous float array."""
        block = np.ascontiguousarray(self.features[rows])
        if not np.issubdtype(block.dtype, np.floating):
            block = block.astype(np.float64)
        return block


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX_1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX_2 = np.uint64(0x94D049BB133111EB)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * _MIX_1
    z = (z ^ (z >> np.uint64(27))) * _MIX_2
    return np.asarray(z ^ (z >> np.uint64(31)))


def tie_keys(rows: np.ndarray, seed: int) -> np.ndarray:
    """Return a pseudo-random uint64 key per row, fixed by the row and the seed.

    A key depends on nothing but its row and the seed, so ranking by it gives
    the same order however the pool is cut into chunks. For a fixed seed the
    map is a bijection (an odd multiplier, then the invertible splitmix64
    finalizer), so distinct rows never share a key.
    """
    salt = _splitmix64(np.array([seed % 2**64], dtype=np.uint64))
    return _splitmix64(rows.astype(np.uint64) * _GOLDEN + salt)


class QueryStrategy(ABC):
    """Choose which unlabeled rows to label next.

    Subclasses set ``name`` and implement :meth:`_select`; :meth:`select`
    checks the request first, so ``_select`` may assume a non-empty pool,
    ``1 <= batch_size <= len(pool)``, a non-negative seed and, when
    ``needs_model`` is set, a model.
    """

    name: ClassVar[str]
    needs_model: ClassVar[bool] = True

    @final
    def select(self, pool: UnlabeledPool, batch_size: int, seed: int) -> np.ndarray:
        """Return ``batch_size`` distinct rows of ``pool.rows``, most informative first.

        Raises:
            EmptyPoolError: Every row is labeled.
            BatchTooLargeError: The pool holds fewer rows than asked for.
            ValueError: The batch size or seed is negative or zero, or the
                strategy needs a model and the pool has none.
        """
        if len(pool) == 0:
            raise EmptyPoolError(pool.total_rows)
        if batch_size > len(pool):
            raise BatchTooLargeError(batch_size, len(pool))
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if seed < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if self.needs_model and pool.model is None:
            raise ValueError(
                f"strategy {self.name!r} scores rows with a model, "
                "but the pool has none"
            )

        return self._select(pool, batch_size, seed)

    @abstractmethod
    def _select(self, pool: UnlabeledPool, batch_size: int, seed: int) -> np.ndarray:
        """Return the selection of a request that :meth:`select` has checked."""


STRATEGIES: dict[str, type[QueryStrategy]] = {}

_StrategyT = TypeVar("_StrategyT", bound=type[QueryStrategy])


def register(cls: _StrategyT) -> _StrategyT:
    """Add a strategy class to :data:`STRATEGIES` under its ``name``.

    Raises:
        ValueError: The class has no name, or another class has its name.
    """
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{cls.__qualname__} must set a non-empty `name`")
    taken = STRATEGIES.get(name)
    if taken is not None:
        raise ValueError(
            f"strategy name {name!r} is already registered by "
            f"{taken.__module__}.{taken.__qualname__}"
        )
    STRATEGIES[name] = cls
    return cls


def strategy_names() -> list[str]:
    """Return the registered strategy names, sorted."""
    return sorted(STRATEGIES)


def get_strategy(name: str) -> QueryStrategy:
    """Return a new instance of the strategy registered under ``name``.

    Raises:
        UnknownStrategyError: No strategy has that name.
    """
    cls = STRATEGIES.get(name)
    if cls is None:
        raise UnknownStrategyError(name, STRATEGIES)
    return cls()
