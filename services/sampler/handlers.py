"""Handle ``SelectBatch``: score the unlabeled pool, pick the batch, answer.

Consumes ``sampler.commands``; answers on ``sampler.events`` with
``BatchSelected`` (or ``SelectionFailed``). The pool is scored in chunks of
``SAMPLER_CHUNK_ROWS`` rows from a memory-mapped copy of the features, so
memory stays bounded whatever the pool's size. The selected row indices are
stored as a row set in the datasets bucket, most informative first.
"""

from __future__ import annotations

import logging

import numpy as np

from contracts import BatchSelected, SelectBatch
from services.platform import models
from services.platform.datasets import DatasetStore
from services.platform.errors import CommandRefusedError
from services.platform.objectstore import ObjectStore
from services.platform.timing import StepTimer
from services.sampler.errors import EmptyPoolError
from services.sampler.settings import SamplerSettings
from services.sampler.strategies import UnlabeledPool, get_strategy

logger = logging.getLogger(__name__)


class Sampler:
    """Select one batch per ``SelectBatch`` command."""

    def __init__(
        self, settings: SamplerSettings, datasets: DatasetStore, objects: ObjectStore
    ) -> None:
        self.settings = settings
        self.datasets = datasets
        self.objects = objects

    def __call__(self, command: SelectBatch) -> BatchSelected:
        """Answer one command."""
        strategy = get_strategy(command.strategy)
        timer = StepTimer()
        with timer.step("load"):
            dataset = self.datasets.load(command.dataset)
            labeled = self.datasets.get_rows(command.labeled)
        pool_rows = dataset.split["pool"]
        outside = np.setdiff1d(labeled, pool_rows)
        if outside.size:
            raise CommandRefusedError(
                f"{outside.size} labeled row(s) are not in the pool, e.g. "
                f"{int(outside[0])}"
            )
        unlabeled = np.setdiff1d(pool_rows, labeled).astype(np.int64)
        if unlabeled.size == 0:
            # Counted here: the strategy sees every row's features, not the pool.
            raise EmptyPoolError(int(pool_rows.size))

        scorer = None
        if strategy.needs_model:
            with timer.step("load"):
                model = models.from_bytes(self.objects.get(command.model))
            scorer = models.CatBoostScorer(
                model, dataset.categorical_features, self.settings.thread_count
            )
        pool = UnlabeledPool(
            rows=unlabeled,
            features=dataset.features,
            model=scorer,
            chunk_rows=self.settings.chunk_rows,
        )
        with timer.step("select"):
            selected = strategy.select(pool, command.batch_size, command.seed)
        with timer.step("store"):
            selection = self.datasets.put_rows(selected)
        logger.info(
            "selected correlation_id=%s round=%s strategy=%s batch=%s pool=%s",
            command.correlation_id,
            command.round,
            command.strategy,
            len(selected),
            unlabeled.size,
        )
        return command.reply(
            BatchSelected,
            producer="sampler",
            round=command.round,
            strategy=command.strategy,
            selection=selection,
            batch_size=len(selected),
            timings=timer.seconds,
        )
