"""What a flow run does, round by round, through the other services.

Each round commands the trainer, then the evaluator, then (unless it is the
last) the sampler, and "labels" the selected rows: the default oracle reveals
the labels the dataset holds back. After every round the run's state (its
labeled set, model, scores) is written to the reports bucket under the run
key, so a run interrupted at any point resumes from its last completed round
when started again with the same key.

Command ids are derived from the run key, the round and the step. A resumed
run that repeats a command the services already answered gets the recorded
answer from their ledger: nothing is trained or logged twice.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from contracts import (
    BatchSelected,
    DatasetRef,
    EvaluateModel,
    ModelEvaluated,
    ModelTrained,
    ObjectRef,
    SelectBatch,
    SplitMetrics,
    TrainModel,
)
from services.orchestrator.parameters import (
    ActiveLearningParameters,
    BaselineParameters,
    ParameterError,
)
from services.orchestrator.settings import OrchestratorSettings
from services.platform.bus import CommandClient
from services.platform.datasets import (
    DatasetError,
    DatasetStore,
    digits,
    digits_recipe,
)
from services.platform.objectstore import ObjectStore, ObjectStoreError, safe_key
from services.platform.tracking import Tracking, split_metrics

logger = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1d2c86-51b5-4c1a-9a53-7d5ad0a8e0f4")


class RoundResult(BaseModel):
    """One completed round: what was labeled, trained and scored."""

    model_config = ConfigDict(frozen=True)

    round: int
    n_labeled: int
    labeled: ObjectRef
    model: ObjectRef
    mlflow_run_id: str
    fit_seconds: float
    validation: SplitMetrics
    test: SplitMetrics
    report: ObjectRef
    selection: ObjectRef | None = None
    next_labeled: ObjectRef | None = Field(
        default=None, description="The labeled set after this round's selection."
    )
    n_next_labeled: int | None = Field(
        default=None, description="How many rows the next labeled set holds."
    )
    timings: dict[str, float] = Field(
        default_factory=dict,
        description="Seconds per step: each request's round trip as the "
        "orchestrator saw it, and each service's own steps (service_step).",
    )


@dataclass(frozen=True)
class Selection:
    """How a round picks the rows labeled next."""

    strategy: str
    batch_size: int
    seed: int


@dataclass(frozen=True)
class Training:
    """A round's trained model: the trainer's answer and what it was fitted on."""

    round: int
    n_labeled: int
    labeled: ObjectRef
    answer: ModelTrained
    timings: dict[str, float]


@dataclass(frozen=True)
class Evaluation:
    """The evaluator's answer for a round's model."""

    answer: ModelEvaluated
    timings: dict[str, float]


@dataclass(frozen=True)
class Choice:
    """The rows a round selected, and the labeled set they make."""

    selection: ObjectRef
    next_labeled: ObjectRef
    n_labeled: int
    timings: dict[str, float]


class RunState(BaseModel):
    """Everything needed to resume or audit a run; stored after each round."""

    run_key: str
    kind: Literal["baseline", "active_learning"]
    parameters: dict[str, Any]
    dataset: DatasetRef
    pool_size: int
    parent_run_id: str
    rounds: list[RoundResult] = Field(default_factory=list)
    stopped_reason: str | None = None
    finished: bool = False

    @property
    def correlation_id(self) -> uuid.UUID:
        """Return the id every message of this run carries."""
        return self.correlation_for(self.run_key)

    @staticmethod
    def correlation_for(run_key: str) -> uuid.UUID:
        """Return the id every message of the run ``run_key`` carries."""
        return uuid.uuid5(_NAMESPACE, run_key)


@dataclass
class Platform:
    """The connections a flow run uses."""

    settings: OrchestratorSettings
    client: CommandClient
    objects: ObjectStore
    datasets: DatasetStore
    tracking: Tracking
    _digits: DatasetRef | None = field(default=None, init=False, repr=False)
    _digits_lock: threading.Lock = field(
        default_factory=threading.Lock, init=False, repr=False
    )

    def resolve_dataset(self, name: str) -> DatasetRef:
        """Return the reference of a dataset id, registering 'digits' on demand.

        'digits' is built and registered once per store, and found again by
        its recipe: each flow run is a process of its own, and building the
        snapshot means importing scikit-learn. Within one platform it is
        resolved once: a benchmark's experiments share it.
        """
        if name == "digits":
            with self._digits_lock:
                if self._digits is None:
                    recipe = digits_recipe()
                    found = self.datasets.find_recipe(recipe)
                    if found is None:
                        found = self.datasets.put(digits())
                        self.datasets.put_recipe(recipe, found)
                    self._digits = found
                return self._digits
        return self.datasets.resolve(name)

    def state_key(self, run_key: str) -> str:
        """Return where a run's state lives in the reports bucket."""
        return state_key(run_key)

    def load_state(self, run_key: str) -> RunState | None:
        """Return a run's stored state, or None for a new run."""
        return read_state(self.objects, self.settings.s3.reports_bucket, run_key)

    def save_state(self, state: RunState) -> ObjectRef:
        """Store a run's state (replacing the previous one)."""
        return self.objects.put(
            self.settings.s3.reports_bucket,
            self.state_key(state.run_key),
            state.model_dump_json(indent=1).encode(),
            "application/json",
        )


def state_key(run_key: str) -> str:
    """Return where a run's state lives in the reports bucket."""
    return safe_key("runs", run_key, "state.json")


def read_state(objects: ObjectStore, bucket: str, run_key: str) -> RunState | None:
    """Return a run's stored state, or None if it has not started."""
    key = state_key(run_key)
    if not objects.exists(bucket, key):
        return None
    return RunState.model_validate_json(objects.read(bucket, key))


class ExperimentRunner:
    """Run baseline and active-learning experiments through the services."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.timeout_s = platform.settings.command_timeout_s

    # -- run set-up --------------------------------------------------------------

    def start(
        self,
        kind: Literal["baseline", "active_learning"],
        run_key: str,
        parameters: BaselineParameters | ActiveLearningParameters,
    ) -> RunState:
        """Return the stored state of ``run_key``, or a new one.

        Raises:
            ParameterError: the key was used with other parameters, or the
                plan needs more labels than the pool holds.
            DatasetError: the dataset is not registered.
        """
        values = parameters.model_dump(mode="json", exclude={"run_key"})
        state = self.platform.load_state(run_key)
        if state is not None:
            if state.parameters != values or state.kind != kind:
                raise ParameterError(
                    f"run key {run_key!r} was started with other parameters "
                    f"({state.parameters}); use a new run key"
                )
            logger.info(
                "resuming run_key=%s after %s completed round(s)",
                run_key,
                len(state.rounds),
            )
            return state

        dataset = self.platform.resolve_dataset(parameters.dataset)
        pool_size = len(self.platform.datasets.load(dataset).split["pool"])
        if isinstance(parameters, ActiveLearningParameters):
            parameters.check_pool(pool_size)
        experiment = self._experiment(kind)
        state = RunState(
            run_key=run_key,
            kind=kind,
            parameters=values,
            dataset=dataset,
            pool_size=pool_size,
            parent_run_id=self._parent_run(experiment, run_key, values),
        )
        self.platform.save_state(state)
        return state

    def _experiment(self, kind: str) -> str:
        settings = self.platform.settings
        return (
            settings.baseline_experiment
            if kind == "baseline"
            else settings.active_learning_experiment
        )

    def _parent_run(self, experiment: str, run_key: str, values: dict[str, Any]) -> str:
        from mlflow.entities import Param

        client = self.platform.tracking.client
        experiment_id = self.platform.tracking.experiment_id(experiment)
        run = client.create_run(
            experiment_id,
            tags={"mlflow.runName": run_key, "platform.run_key": run_key},
        )
        flat = _flatten(values)
        client.log_batch(
            run.info.run_id, params=[Param(k, str(v)) for k, v in flat.items()]
        )
        return str(run.info.run_id)

    # -- rounds --------------------------------------------------------------------

    def initial_labeled(self, state: RunState, size: int, seed: int) -> ObjectRef:
        """Return a seeded random sample of the pool: the rows labeled at first."""
        pool = self.platform.datasets.load(state.dataset).split["pool"]
        return self.platform.datasets.put_rows(initial_rows(pool, size, seed))

    def whole_pool(self, state: RunState) -> ObjectRef:
        """Return the whole pool as a labeled set (the baseline's)."""
        pool = self.platform.datasets.load(state.dataset).split["pool"]
        return self.platform.datasets.put_rows(pool)

    def train(
        self,
        state: RunState,
        round_index: int,
        labeled: ObjectRef,
        n_labeled: int,
        seed: int,
        params: Any,
        init_model: ObjectRef | None = None,
    ) -> Training:
        """Command the trainer to fit on ``labeled``; return its answer."""
        started = time.perf_counter()
        trained = self.platform.client.request(
            TrainModel(
                **self._envelope(state, round_index, "train"),
                experiment=self._experiment(state.kind),
                round=round_index,
                dataset=state.dataset,
                labeled=labeled,
                params=params,
                seed=seed,
                init_model=init_model,
                parent_run_id=state.parent_run_id,
            ),
            timeout_s=self.timeout_s,
        )
        assert isinstance(trained, ModelTrained)  # noqa: S101 (REPLIES guarantees it)
        timings = {"train_request": time.perf_counter() - started}
        timings.update(_prefixed("trainer", trained.timings))
        return Training(round_index, n_labeled, labeled, trained, timings)

    def evaluate(
        self, state: RunState, training: Training, register_model: bool
    ) -> Evaluation:
        """Command the evaluator to score a trained model; return its answer.

        Args:
            register_model: the model is the run's final one: log it into
                MLflow and register it.
        """
        return self._evaluate(
            state,
            training.round,
            "evaluate",
            training.answer.model,
            training.n_labeled,
            training.answer.mlflow_run_id,
            register_model,
        )

    def register(self, state: RunState, result: RoundResult) -> Evaluation:
        """Register a recorded round's model once a score has made it the final one.

        Idempotent: the command's id is the round's, so a second call is
        answered from the evaluator's ledger, and the evaluator registers a
        run's model once.
        """
        return self._evaluate(
            state,
            result.round,
            "register",
            result.model,
            result.n_labeled,
            result.mlflow_run_id,
            register_model=True,
        )

    def _evaluate(
        self,
        state: RunState,
        round_index: int,
        step: str,
        model: ObjectRef,
        n_labeled: int,
        mlflow_run_id: str,
        register_model: bool,
    ) -> Evaluation:
        started = time.perf_counter()
        command = EvaluateModel(
            **self._envelope(state, round_index, step),
            experiment=self._experiment(state.kind),
            round=round_index,
            dataset=state.dataset,
            model=model,
            n_labeled=n_labeled,
            mlflow_run_id=mlflow_run_id,
            register_model=register_model,
        )
        evaluated = self.platform.client.request(command, timeout_s=self.timeout_s)
        assert isinstance(evaluated, ModelEvaluated)  # noqa: S101 (same)
        timings = {"evaluate_request": time.perf_counter() - started}
        timings.update(_prefixed("evaluator", evaluated.timings))
        return Evaluation(evaluated, timings)

    def select(
        self, state: RunState, training: Training, selection: Selection
    ) -> Choice:
        """Command the sampler, then "label" the batch; return the next labeled set."""
        started = time.perf_counter()
        selected = self.platform.client.request(
            SelectBatch(
                **self._envelope(state, training.round, "select"),
                round=training.round,
                dataset=state.dataset,
                model=training.answer.model,
                labeled=training.labeled,
                strategy=selection.strategy,
                batch_size=selection.batch_size,
                seed=selection.seed + training.round,
            ),
            timeout_s=self.timeout_s,
        )
        assert isinstance(selected, BatchSelected)  # noqa: S101 (same)
        timings = {"select_request": time.perf_counter() - started}
        timings.update(_prefixed("sampler", selected.timings))
        started = time.perf_counter()
        datasets = self.platform.datasets
        # The oracle: the selected rows' labels are in the dataset already; they
        # count as labeled from the next round on.
        rows = np.union1d(
            datasets.get_rows(training.labeled), datasets.get_rows(selected.selection)
        )
        next_labeled = datasets.put_rows(rows)
        timings["label"] = time.perf_counter() - started
        return Choice(selected.selection, next_labeled, int(rows.size), timings)

    @staticmethod
    def result(
        training: Training, evaluation: Evaluation, choice: Choice | None = None
    ) -> RoundResult:
        """Return a round's result from its answers."""
        timings = {**training.timings, **evaluation.timings}
        if choice is not None:
            timings.update(choice.timings)
        return RoundResult(
            round=training.round,
            n_labeled=training.n_labeled,
            labeled=training.labeled,
            model=training.answer.model,
            mlflow_run_id=training.answer.mlflow_run_id,
            fit_seconds=training.answer.fit_seconds,
            validation=evaluation.answer.validation,
            test=evaluation.answer.test,
            report=evaluation.answer.report,
            selection=choice.selection if choice else None,
            next_labeled=choice.next_labeled if choice else None,
            n_next_labeled=choice.n_labeled if choice else None,
            timings=timings,
        )

    def record(self, state: RunState, result: RoundResult) -> None:
        """Append a completed round to the state, store it, log parent metrics."""
        from mlflow.entities import Metric

        state.rounds.append(result)
        self.platform.save_state(state)
        metrics = split_metrics(result.validation, result.test, result.n_labeled)
        now = int(time.time() * 1000)
        metrics.append(Metric("fit_seconds", result.fit_seconds, now, result.n_labeled))
        self.platform.tracking.client.log_batch(state.parent_run_id, metrics=metrics)

    def finish(self, state: RunState, reason: str) -> None:
        """Mark the run finished, with why it stopped, and close its MLflow run."""
        state.stopped_reason = reason
        state.finished = True
        self.platform.save_state(state)
        client = self.platform.tracking.client
        client.set_tag(state.parent_run_id, "platform.stopped_reason", reason)
        client.set_terminated(state.parent_run_id, "FINISHED")

    def _envelope(self, state: RunState, round_index: int, step: str) -> dict[str, Any]:
        return {
            "message_id": uuid.uuid5(
                _NAMESPACE, f"{state.run_key}:{round_index}:{step}"
            ),
            "correlation_id": state.correlation_id,
            "producer": "orchestrator",
        }


def initial_rows(pool: np.ndarray, size: int, seed: int) -> np.ndarray:
    """Return the seeded random sample of ``pool`` labeled before round 0."""
    rows = np.random.default_rng(seed).choice(pool, size=size, replace=False)
    return np.sort(rows)


def selection_needed(
    parameters: ActiveLearningParameters, rounds_done: int, next_size: int
) -> bool | None:
    """Return whether the round that makes ``rounds_done`` selects a next batch.

    None when that depends on the round's score (a patience rule): the batch
    is then selected only after the model is scored.
    """
    if rounds_done >= parameters.rounds:
        return False
    budget = parameters.label_budget
    if budget is not None and next_size > budget:
        return False
    return None if parameters.patience is not None else True


def stop_reason(
    parameters: ActiveLearningParameters, state: RunState, next_size: int
) -> str | None:
    """Return why an active-learning run should stop now, or None to go on."""
    done = len(state.rounds)
    if done >= parameters.rounds:
        return f"completed all {parameters.rounds} rounds"
    budget = parameters.label_budget
    if budget is not None and next_size > budget:
        return (
            f"label budget of {budget} reached ({state.rounds[-1].n_labeled} labeled)"
        )
    patience = parameters.patience
    if patience is not None and done > patience:
        best_before = max(
            r.validation.accuracy for r in state.rounds[: done - patience]
        )
        recent = max(r.validation.accuracy for r in state.rounds[done - patience :])
        if recent - best_before <= parameters.min_improvement:
            return (
                f"validation accuracy did not improve by more than "
                f"{parameters.min_improvement} in {patience} round(s) "
                f"(best {best_before:.4f}, since then {recent:.4f})"
            )
    return None


def _prefixed(service: str, timings: dict[str, float]) -> dict[str, float]:
    return {f"{service}_{step}": seconds for step, seconds in timings.items()}


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


__all__ = [
    "Choice",
    "DatasetError",
    "Evaluation",
    "ExperimentRunner",
    "ObjectStoreError",
    "Platform",
    "RoundResult",
    "RunState",
    "Selection",
    "Training",
    "initial_rows",
    "selection_needed",
    "stop_reason",
]
