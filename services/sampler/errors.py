"""Errors the sampler raises when it refuses a selection; each names the counts."""

from __future__ import annotations

from collections.abc import Iterable

from services.platform.errors import CommandRefusedError


class EmptyPoolError(CommandRefusedError):
    """Every row the pool is drawn from is labeled, so there is nothing to select.

    ``total_rows`` counts the rows the pool is drawn from: the dataset's rows
    when a strategy raises it, a split's rows when a caller knows the split.
    """

    def __init__(self, total_rows: int) -> None:
        self.total_rows = total_rows
        self.labeled_rows = total_rows
        if total_rows == 0:
            detail = "the dataset has no rows"
        else:
            detail = f"{total_rows} rows, all {total_rows} labeled"
        super().__init__(f"the unlabeled pool is empty ({detail}); nothing to select")


class BatchTooLargeError(CommandRefusedError):
    """The batch asks for more rows than the unlabeled pool holds."""

    def __init__(self, batch_size: int, pool_size: int) -> None:
        self.batch_size = batch_size
        self.pool_size = pool_size
        super().__init__(
            f"batch of {batch_size} rows asked from a pool of "
            f"{pool_size} unlabeled rows"
        )


class UnknownStrategyError(CommandRefusedError):
    """No query strategy is registered under the name asked for."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(f"unknown strategy {name!r}; known: {', '.join(self.known)}")
