"""Every command and event the services exchange.

Commands are imperative (``TrainModel``); events are past tense
(``ModelTrained``), and every command has a failure event
(``TrainingFailed``) so a caller always gets an answer.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.envelope import Command, Event, FailureEvent, Identifier
from contracts.references import DatasetRef, ObjectRef

_SEED = Field(
    ge=0, le=2**32 - 1, description="Seed of every random choice.", examples=[42]
)
_ROUND = Field(ge=0, le=100_000, description="Round of the flow run (0 first).")
_STRATEGY = Field(
    min_length=1,
    max_length=64,
    pattern=r"^[a-z][a-z0-9_]*$",
    description="Name of a query strategy the sampler registers.",
    examples=["entropy", "margin", "least_confident", "random"],
)
_STEP = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)]
Timings = Annotated[
    dict[_STEP, Annotated[float, Field(ge=0)]],
    Field(
        default_factory=dict,
        max_length=32,
        description="Seconds the handler spent per step (e.g. load, fit, store, "
        "log), so a caller can see where a command's time went.",
        examples=[{"load": 0.02, "fit": 4.1, "store": 0.03, "log": 0.4}],
    ),
]


class CatBoostParams(BaseModel):
    """The CatBoost parameters a trainer fits with."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    iterations: int = Field(default=1000, ge=1, le=100_000)
    learning_rate: float | None = Field(
        default=None, gt=0, le=1, description="None lets CatBoost choose."
    )
    depth: int = Field(default=6, ge=1, le=16)
    l2_leaf_reg: float = Field(default=3.0, ge=0, le=1000)


class SplitMetrics(BaseModel):
    """Scores of one model on one split."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    n_rows: int = Field(ge=1)
    accuracy: float = Field(ge=0, le=1)
    f1_macro: float = Field(ge=0, le=1)
    f1_weighted: float = Field(ge=0, le=1)
    precision_macro: float = Field(ge=0, le=1)
    recall_macro: float = Field(ge=0, le=1)


# -- trainer -----------------------------------------------------------------


class TrainModel(Command):
    """Fit a CatBoost model on the labeled rows of a dataset."""

    message_type: Literal["TrainModel"] = "TrainModel"
    experiment: Identifier = Field(description="MLflow experiment to log into.")
    round: int = _ROUND
    dataset: DatasetRef
    labeled: ObjectRef = Field(description="Row ids labeled so far.")
    params: CatBoostParams = Field(default_factory=CatBoostParams)
    seed: int = _SEED
    init_model: ObjectRef | None = Field(
        default=None, description="Model to continue from (warm start)."
    )
    parent_run_id: str | None = Field(
        default=None,
        max_length=64,
        pattern=r"^[0-9a-f]{32}$",
        description="MLflow run of the flow; the fit is logged as its child.",
    )


class ModelTrained(Event):
    """A model was fitted and stored."""

    message_type: Literal["ModelTrained"] = "ModelTrained"
    round: int = _ROUND
    model: ObjectRef
    mlflow_run_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    n_labeled: int = Field(ge=1)
    fit_seconds: float = Field(ge=0)
    timings: Timings


class TrainingFailed(FailureEvent):
    """A ``TrainModel`` command could not be carried out."""

    message_type: Literal["TrainingFailed"] = "TrainingFailed"


# -- sampler -----------------------------------------------------------------


class SelectBatch(Command):
    """Select the next rows to label from the unlabeled pool."""

    message_type: Literal["SelectBatch"] = "SelectBatch"
    round: int = _ROUND
    dataset: DatasetRef
    model: ObjectRef
    labeled: ObjectRef = Field(description="Row ids labeled so far.")
    strategy: str = _STRATEGY
    batch_size: int = Field(ge=1, le=10_000_000)
    seed: int = _SEED


class BatchSelected(Event):
    """A batch of unlabeled rows was selected and stored."""

    message_type: Literal["BatchSelected"] = "BatchSelected"
    round: int = _ROUND
    strategy: str = _STRATEGY
    selection: ObjectRef = Field(description="The selected row ids.")
    batch_size: int = Field(ge=1)
    timings: Timings


class SelectionFailed(FailureEvent):
    """A ``SelectBatch`` command could not be carried out."""

    message_type: Literal["SelectionFailed"] = "SelectionFailed"


# -- evaluator ---------------------------------------------------------------


class EvaluateModel(Command):
    """Score a model on the validation and test splits of its dataset."""

    message_type: Literal["EvaluateModel"] = "EvaluateModel"
    experiment: Identifier = Field(description="MLflow experiment to log into.")
    round: int = _ROUND
    dataset: DatasetRef
    model: ObjectRef
    n_labeled: int = Field(ge=1, description="Labeled rows the model saw; the step.")
    mlflow_run_id: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{32}$",
        description="MLflow run to log the scores into.",
    )
    register_model: bool = Field(
        default=True,
        description="Also log the model into its MLflow run, with pictures of "
        "its confusion matrices, and register it under the experiment's name. "
        "Flows ask it for a run's final model only; every round's model stays "
        "in the object store.",
    )


class ModelEvaluated(Event):
    """A model was scored; the full report is stored."""

    message_type: Literal["ModelEvaluated"] = "ModelEvaluated"
    round: int = _ROUND
    n_labeled: int = Field(ge=1)
    validation: SplitMetrics
    test: SplitMetrics
    report: ObjectRef = Field(description="Confusion matrices and per-class report.")
    timings: Timings


class EvaluationFailed(FailureEvent):
    """An ``EvaluateModel`` command could not be carried out."""

    message_type: Literal["EvaluationFailed"] = "EvaluationFailed"
