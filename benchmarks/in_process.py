"""The active-learning loop as a notebook would run it: one process, no services.

It does exactly the work a flow run asks of the services, with the same
functions and the same seeds: the same initial sample, the same CatBoost fit
per round (warm-started from the previous model when asked), the same
scoring of the validation and test splits, and the same strategy choosing
the next rows. What it leaves out is everything the platform adds: messages,
the object store, MLflow, Prefect and the run state. It is the lower bound
the services are measured against, and the reference their results must
match row for row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from contracts import SplitMetrics
from services.evaluator.handlers import score_split
from services.orchestrator.experiment import initial_rows, selection_needed
from services.orchestrator.parameters import ActiveLearningParameters
from services.orchestrator.report import area_under_curve as report_area_under_curve
from services.platform import models
from services.platform.datasets import DatasetSnapshot
from services.platform.timing import StepTimer
from services.sampler.strategies import UnlabeledPool, get_strategy


@dataclass(frozen=True)
class Threads:
    """CatBoost threads per step, as the services would use them."""

    fit: int
    select: int = 1
    evaluate: int = 1


@dataclass
class LoopRound:
    """One round of the in-process loop."""

    n_labeled: int
    validation: SplitMetrics
    test: SplitMetrics
    selection: np.ndarray | None
    timings: dict[str, float] = field(default_factory=dict)


def run_loop(
    dataset: DatasetSnapshot,
    parameters: ActiveLearningParameters,
    threads: Threads,
    chunk_rows: int = 50_000,
) -> list[LoopRound]:
    """Run ``parameters`` to their last round; return every round.

    Raises:
        ValueError: the parameters hold a patience rule, which this loop
            does not model.
    """
    if parameters.patience is not None:
        raise ValueError("the in-process loop runs fixed rounds; patience is unset")
    pool_rows = dataset.split["pool"]
    step = parameters.step_size(len(pool_rows))
    labeled = initial_rows(
        pool_rows, parameters.initial_size(len(pool_rows)), parameters.seed
    )
    strategy = get_strategy(parameters.strategy)
    rounds: list[LoopRound] = []
    previous: Any = None
    for round_index in range(parameters.rounds):
        timer = StepTimer()
        warm = parameters.warm_start and previous is not None
        model = models.new_classifier(
            parameters.round_params(warm),
            dataset.n_classes,
            parameters.seed,
            threads.fit,
        )
        with timer.step("fit"):
            model.fit(
                models.make_pool(
                    np.asarray(dataset.features[labeled]),
                    dataset.categorical_features,
                    np.asarray(dataset.labels[labeled]),
                ),
                init_model=previous if warm else None,
            )
        with timer.step("predict"):
            scorer = models.CatBoostScorer(
                model, dataset.categorical_features, threads.evaluate
            )
            validation = score_split(dataset, scorer, "validation")[0]
            test = score_split(dataset, scorer, "test")[0]
        selection = None
        if selection_needed(parameters, round_index + 1, labeled.size + step):
            with timer.step("select"):
                pool = UnlabeledPool(
                    rows=np.setdiff1d(pool_rows, labeled).astype(np.int64),
                    features=dataset.features,
                    model=models.CatBoostScorer(
                        model, dataset.categorical_features, threads.select
                    ),
                    chunk_rows=chunk_rows,
                )
                selection = strategy.select(pool, step, parameters.seed + round_index)
        rounds.append(
            LoopRound(labeled.size, validation, test, selection, timer.seconds)
        )
        if selection is None:
            break
        labeled = np.union1d(labeled, selection)
        previous = model
    return rounds


def area_under_curve(rounds: list[LoopRound]) -> float:
    """Return the mean test accuracy over the labeled range, as reports count it."""
    return report_area_under_curve(
        [r.n_labeled for r in rounds], [r.test.accuracy for r in rounds]
    )
