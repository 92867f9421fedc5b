"""The Prefect flows users run: baseline, active learning, benchmark.

Each round is a visible Prefect task; a flow run's parameters are validated
before any command is sent. The flows talk to the other services only
through commands on Kafka (see :mod:`services.orchestrator.experiment`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

# The clients of the object store, the broker and MLflow are loaded with
# this module rather than by the first connection a flow run opens: a flow
# run's process loads its flow before the run starts, so the run's time is
# its work, as for any script that imports first (MLflow alone takes 1-2 s).
import boto3  # noqa: F401
import kafka  # noqa: F401
import mlflow  # noqa: F401
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from contracts import CatBoostParams, ObjectRef
from services.orchestrator.experiment import (
    Choice,
    Evaluation,
    ExperimentRunner,
    Platform,
    RoundResult,
    RunState,
    Selection,
    Training,
    selection_needed,
    stop_reason,
)
from services.orchestrator.parameters import (
    ActiveLearningParameters,
    BaselineParameters,
    default_run_key,
    run_key_for,
    validated,
)
from services.orchestrator.settings import OrchestratorSettings
from services.platform.bus import CommandClient
from services.platform.datasets import DatasetStore
from services.platform.objectstore import open_object_store
from services.platform.settings import load_settings
from services.platform.tracking import Tracking


@contextmanager
def platform_from_environment() -> Iterator[Platform]:
    """Connect to the broker, store and MLflow the environment names."""
    settings = load_settings(OrchestratorSettings)
    objects = open_object_store(settings.s3)
    with CommandClient("orchestrator", settings.kafka) as client:
        yield Platform(
            settings=settings,
            client=client,
            objects=objects,
            datasets=DatasetStore(
                objects, settings.s3.datasets_bucket, settings.cache_dir
            ),
            tracking=Tracking(
                settings.mlflow.tracking_uri, settings.mlflow.retry_timeout_s
            ),
        )


@task(
    name="train",
    task_run_name="round {round_index}: train on {n_labeled} labels",
    cache_policy=NO_CACHE,
)
def train(
    runner: ExperimentRunner,
    state: RunState,
    round_index: int,
    labeled: ObjectRef,
    n_labeled: int,
    seed: int,
    params: CatBoostParams,
    init_model: ObjectRef | None = None,
) -> Training:
    """Command the trainer for one round."""
    return runner.train(
        state, round_index, labeled, n_labeled, seed, params, init_model
    )


@task(
    name="evaluate",
    task_run_name="round {training.round}: evaluate",
    cache_policy=NO_CACHE,
)
def evaluate(
    runner: ExperimentRunner, state: RunState, training: Training, final: bool
) -> Evaluation:
    """Command the evaluator to score one round's model (and register a final one)."""
    evaluation = runner.evaluate(state, training, register_model=final)
    get_run_logger().info(
        "round %s: %s labels, validation accuracy %.4f, test accuracy %.4f",
        training.round,
        training.n_labeled,
        evaluation.answer.validation.accuracy,
        evaluation.answer.test.accuracy,
    )
    return evaluation


@task(
    name="register",
    task_run_name="round {result.round}: register the final model",
    cache_policy=NO_CACHE,
)
def register_model(
    runner: ExperimentRunner, state: RunState, result: RoundResult
) -> None:
    """Command the evaluator to register a run's final model, once it is known."""
    runner.register(state, result)


@task(
    name="select-and-label",
    task_run_name="round {training.round}: select by {selection.strategy}",
    cache_policy=NO_CACHE,
)
def select_and_label(
    runner: ExperimentRunner,
    state: RunState,
    training: Training,
    selection: Selection,
) -> Choice:
    """Command the sampler, then reveal the selected rows' labels."""
    return runner.select(state, training, selection)


def run_active_learning(
    runner: ExperimentRunner, parameters: ActiveLearningParameters, run_key: str
) -> RunState:
    """Run (or resume) one active-learning experiment to its end.

    Rounds overlap where nothing waits on them: a round's model is scored
    while the sampler selects from it and while the next round trains, and
    rounds are recorded in order as their scores arrive. A patience rule
    needs each round's score before the next selection, so with one set the
    rounds run one after another.
    """
    state = runner.start("active_learning", run_key, parameters)
    if state.finished:
        return state
    step = parameters.step_size(state.pool_size)
    selection = Selection(parameters.strategy, step, parameters.seed)
    if state.rounds and state.rounds[-1].next_labeled is None:
        # Stopped after recording its last round, before marking the run
        # finished: only the registration may be missing.
        last = state.rounds[-1]
        register_model(runner, state, last)
        reason = stop_reason(parameters, state, last.n_labeled + step)
        assert reason is not None  # noqa: S101 (a round without selection is last)
        runner.finish(state, reason)
        return state
    if state.rounds:
        last = state.rounds[-1]
        labeled = last.next_labeled
        n_labeled = last.n_next_labeled or last.n_labeled + step
    else:
        n_labeled = parameters.initial_size(state.pool_size)
        labeled = runner.initial_labeled(state, n_labeled, parameters.seed)

    in_flight: list[Future[None]] = []
    previous = state.rounds[-1].model if state.rounds else None
    round_index = len(state.rounds)
    # One thread scores rounds, one records them: both keep rounds in order.
    with (
        ThreadPoolExecutor(1, "evaluate") as scoring,
        ThreadPoolExecutor(1, "record") as recording,
    ):
        while True:
            _raise_failures(in_flight)
            warm = parameters.warm_start and previous is not None
            training = train(
                runner,
                state,
                round_index,
                labeled,
                n_labeled,
                parameters.seed,
                parameters.round_params(warm),
                previous if warm else None,
            )
            ahead = selection_needed(parameters, round_index + 1, n_labeled + step)
            # The run's final model is registered; the last round is known
            # before its score unless a patience rule decides from the score.
            final = ahead is False
            scored = _submit(scoring, evaluate, runner, state, training, final)
            if ahead is None:
                # Only this round's score, with every earlier round recorded,
                # can say whether the run goes on.
                _raise_failures(in_flight, wait=True)
                result = runner.result(training, scored.result())
                reason = stop_reason(parameters, _with(state, result), n_labeled + step)
                if reason is None:
                    choice = select_and_label(runner, state, training, selection)
                else:
                    choice = None
                    register_model(runner, state, result)
            else:
                choice = (
                    select_and_label(runner, state, training, selection)
                    if ahead
                    else None
                )
            in_flight.append(
                recording.submit(_record, runner, state, training, scored, choice)
            )
            if choice is None:
                break
            labeled, n_labeled = choice.next_labeled, choice.n_labeled
            previous = training.answer.model
            round_index += 1
        for recorded in in_flight:
            recorded.result()  # raises what a scoring or recording raised
    reason = stop_reason(parameters, state, n_labeled + step)
    assert reason is not None  # noqa: S101 (the loop ends only at a stop)
    runner.finish(state, reason)
    return state


def _submit(pool: ThreadPoolExecutor, task_function: Any, *args: Any) -> Future[Any]:
    """Run a task on ``pool`` inside this flow run's context."""
    return pool.submit(contextvars.copy_context().run, task_function, *args)


def _raise_failures(in_flight: list[Future[None]], wait: bool = False) -> None:
    """Raise the error of a failed scoring or recording, if one has failed."""
    for recorded in in_flight:
        if wait or recorded.done():
            recorded.result()


def _record(
    runner: ExperimentRunner,
    state: RunState,
    training: Training,
    scored: Future[Evaluation],
    choice: Choice | None,
) -> None:
    runner.record(state, runner.result(training, scored.result(), choice))


def run_baseline(
    runner: ExperimentRunner, parameters: BaselineParameters, run_key: str
) -> RunState:
    """Run (or reuse) one baseline: train on the whole pool, evaluate."""
    state = runner.start("baseline", run_key, parameters)
    if state.finished:
        return state
    training = train(
        runner,
        state,
        0,
        runner.whole_pool(state),
        state.pool_size,
        parameters.seed,
        parameters.params,
    )
    runner.record(
        state, runner.result(training, evaluate(runner, state, training, True))
    )
    runner.finish(state, "trained on the whole pool")
    return state


@flow(name="baseline", flow_run_name="baseline seed {seed}")
def baseline(
    dataset: str = "digits",
    seed: int = 42,
    params: dict[str, Any] | None = None,
    run_key: str | None = None,
) -> dict[str, Any]:
    """Train on the whole pool and evaluate: the full-data baseline."""
    parameters = validated(
        BaselineParameters,
        _given(dataset=dataset, seed=seed, params=params, run_key=run_key),
    )
    key = parameters.run_key or default_run_key("baseline", parameters.dataset, seed)
    with platform_from_environment() as platform:
        state = run_baseline(ExperimentRunner(platform), parameters, key)
    return _summary(state)


@flow(name="active-learning", flow_run_name="{strategy} seed {seed}")
def active_learning(
    strategy: str = "margin",
    initial_fraction: float = 0.05,
    step_fraction: float = 0.05,
    rounds: int = 15,
    seed: int = 42,
    params: dict[str, Any] | None = None,
    dataset: str = "digits",
    run_key: str | None = None,
    warm_start: bool = False,
    warm_start_iterations: int | None = None,
    patience: int | None = None,
    min_improvement: float = 0.0,
    label_budget: int | None = None,
) -> dict[str, Any]:
    """Label a fraction of the pool, then grow it round by round by a strategy."""
    parameters = validated(
        ActiveLearningParameters,
        _given(
            strategy=strategy,
            initial_fraction=initial_fraction,
            step_fraction=step_fraction,
            rounds=rounds,
            seed=seed,
            params=params,
            dataset=dataset,
            run_key=run_key,
            warm_start=warm_start,
            warm_start_iterations=warm_start_iterations,
            patience=patience,
            min_improvement=min_improvement,
            label_budget=label_budget,
        ),
    )
    key = parameters.run_key or default_run_key("al", strategy, seed)
    with platform_from_environment() as platform:
        state = run_active_learning(ExperimentRunner(platform), parameters, key)
    return _summary(state)


@task(name="experiment", task_run_name="{label}", cache_policy=NO_CACHE)
def experiment_task(
    label: str,
    runner: ExperimentRunner,
    parameters: ActiveLearningParameters | BaselineParameters,
    run_key: str,
) -> RunState:
    """Run one experiment of a benchmark."""
    if isinstance(parameters, BaselineParameters):
        return run_baseline(runner, parameters, run_key)
    return run_active_learning(runner, parameters, run_key)


# One experiment of a benchmark: its label, parameters and run key.
_Plan = tuple[str, ActiveLearningParameters | BaselineParameters, str]

# A usual benchmark's experiments (4 strategies x 5 seeds and their
# baselines) all run at once: every replica always has a command queued on
# its partitions (the client spreads pending commands over them), and the
# final registrations this sends to the evaluator together cost less than
# a replica waiting for work.
EXPERIMENTS_IN_FLIGHT = 32


@flow(
    name="benchmark",
    flow_run_name="benchmark {benchmark_key}",
    task_runner=ThreadPoolTaskRunner(max_workers=EXPERIMENTS_IN_FLIGHT),
)
def benchmark(
    benchmark_key: str,
    strategies: list[str] | None = None,
    seeds: list[int] | None = None,
    rounds: int = 15,
    initial_fraction: float = 0.05,
    step_fraction: float = 0.05,
    params: dict[str, Any] | None = None,
    dataset: str = "digits",
) -> dict[str, Any]:
    """Run strategies x seeds and a baseline per seed concurrently, then compare."""
    from services.orchestrator.report import build_report

    strategies = strategies or ["entropy", "margin", "least_confident", "random"]
    seeds = seeds or [0, 1, 2, 3, 4]
    # Baselines go last: each is one fit, where an active-learning run is a
    # chain of fits, one after another. Queued last, they fill the trainers
    # while the last chains finish instead of leaving a replica idle.
    learning: list[_Plan] = []
    baselines: list[_Plan] = []
    for seed in seeds:
        baselines.append(
            (
                f"baseline seed {seed}",
                validated(
                    BaselineParameters,
                    _given(dataset=dataset, seed=seed, params=params),
                ),
                run_key_for(benchmark_key, "baseline", seed),
            )
        )
        for strategy in strategies:
            learning.append(
                (
                    f"{strategy} seed {seed}",
                    validated(
                        ActiveLearningParameters,
                        _given(
                            strategy=strategy,
                            seed=seed,
                            rounds=rounds,
                            initial_fraction=initial_fraction,
                            step_fraction=step_fraction,
                            params=params,
                            dataset=dataset,
                        ),
                    ),
                    run_key_for(benchmark_key, strategy, seed),
                )
            )
    plans = learning + baselines
    with platform_from_environment() as platform:
        runner = ExperimentRunner(platform)
        futures = [
            experiment_task.submit(label, runner, parameters, key)
            for label, parameters, key in plans
        ]
        states = [future.result() for future in futures]
        report = build_report(
            benchmark_key,
            states,
            platform.objects,
            platform.tracking,
            platform.settings,
        )
    return report.summary()


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _with(state: RunState, result: RoundResult) -> RunState:
    return state.model_copy(update={"rounds": [*state.rounds, result]})


def _summary(state: RunState) -> dict[str, Any]:
    last = state.rounds[-1] if state.rounds else None
    return {
        "run_key": state.run_key,
        "kind": state.kind,
        "rounds": len(state.rounds),
        "n_labeled": last.n_labeled if last else 0,
        "test_accuracy": last.test.accuracy if last else None,
        "stopped_reason": state.stopped_reason,
        "mlflow_parent_run_id": state.parent_run_id,
    }
