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
import time
import uuid
from dataclasses import dataclass
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
from services.platform.datasets import DatasetError, DatasetStore, digits
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
        return uuid.uuid5(_NAMESPACE, self.run_key)


@dataclass
class Platform:
    """The connections a flow run uses."""

    settings: OrchestratorSettings
    client: CommandClient
    objects: ObjectStore
    datasets: DatasetStore
    tracking: Tracking

    def resolve_dataset(self, name: str) -> DatasetRef:
        """Return the reference of a dataset id, registering 'digits' on demand."""
        if name == "digits":
            return self.datasets.put(digits())
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
        rows = np.random.default_rng(seed).choice(pool, size=size, replace=False)
        return self.platform.datasets.put_rows(np.sort(rows))

    def whole_pool(self, state: RunState) -> ObjectRef:
        """Return the whole pool as a labeled set (the baseline's)."""
        pool = self.platform.datasets.load(state.dataset).split["pool"]
        return self.platform.datasets.put_rows(pool)

    def train_and_evaluate(
        self,
        state: RunState,
        round_index: int,
        labeled: ObjectRef,
        n_labeled: int,
        seed: int,
        params: Any,
        init_model: ObjectRef | None = None,
    ) -> RoundResult:
        """Train on ``labeled`` and score the model; return the round's result."""
        experiment = self._experiment(state.kind)
        trained = self.platform.client.request(
            TrainModel(
                **self._envelope(state, round_index, "train"),
                experiment=experiment,
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
        evaluated = self.platform.client.request(
            EvaluateModel(
                **self._envelope(state, round_index, "evaluate"),
                experiment=experiment,
                round=round_index,
                dataset=state.dataset,
                model=trained.model,
                n_labeled=n_labeled,
                mlflow_run_id=trained.mlflow_run_id,
            ),
            timeout_s=self.timeout_s,
        )
        assert isinstance(evaluated, ModelEvaluated)  # noqa: S101 (same)
        return RoundResult(
            round=round_index,
            n_labeled=n_labeled,
            labeled=labeled,
            model=trained.model,
            mlflow_run_id=trained.mlflow_run_id,
            fit_seconds=trained.fit_seconds,
            validation=evaluated.validation,
            test=evaluated.test,
            report=evaluated.report,
        )

    def select(
        self,
        state: RunState,
        result: RoundResult,
        strategy: str,
        batch_size: int,
        seed: int,
    ) -> tuple[ObjectRef, ObjectRef, int]:
        """Select the next batch and "label" it; return selection, labeled, count."""
        selected = self.platform.client.request(
            SelectBatch(
                **self._envelope(state, result.round, "select"),
                round=result.round,
                dataset=state.dataset,
                model=result.model,
                labeled=result.labeled,
                strategy=strategy,
                batch_size=batch_size,
                seed=seed + result.round,
            ),
            timeout_s=self.timeout_s,
        )
        assert isinstance(selected, BatchSelected)  # noqa: S101 (same)
        datasets = self.platform.datasets
        # The oracle: the selected rows' labels are in the dataset already; they
        # count as labeled from the next round on.
        labeled = np.union1d(
            datasets.get_rows(result.labeled), datasets.get_rows(selected.selection)
        )
        return selected.selection, datasets.put_rows(labeled), int(labeled.size)

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


def _flatten(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


__all__ = [
    "DatasetError",
    "ExperimentRunner",
    "ObjectStoreError",
    "Platform",
    "RoundResult",
    "RunState",
    "stop_reason",
]
