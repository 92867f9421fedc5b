"""Flow parameters, validated before any work starts.

A parameter out of range is refused with a message naming it: fractions
outside (0, 1], fewer than one round, an unknown strategy, or more labels
than the pool holds (checked once the dataset is known).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts import CatBoostParams
from services.platform.errors import ConfigurationError

_RUN_KEY = r"^[a-z0-9][a-z0-9._-]{0,99}$"


class ParameterError(ConfigurationError):
    """Flow parameters are refused; the message names each one at fault."""


class BaselineParameters(BaseModel):
    """Train once on the whole pool: what active learning is measured against."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field(
        default="digits",
        description="'digits', or the id of a registered dataset.",
    )
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    params: CatBoostParams = Field(default_factory=CatBoostParams)
    run_key: str | None = Field(
        default=None,
        pattern=_RUN_KEY,
        description="Names the run; the same key resumes or reuses it.",
    )


class ActiveLearningParameters(BaseModel):
    """Start with a random fraction of the pool, then add the most informative."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    strategy: str = Field(default="margin", description="A sampler strategy.")
    initial_fraction: float = Field(default=0.05, gt=0, le=1)
    step_fraction: float = Field(default=0.05, gt=0, le=1)
    rounds: int = Field(default=15, ge=1, le=1000)
    seed: int = Field(default=42, ge=0, le=2**32 - 1)
    params: CatBoostParams = Field(default_factory=CatBoostParams)
    dataset: str = "digits"
    run_key: str | None = Field(default=None, pattern=_RUN_KEY)
    warm_start: bool = Field(
        default=False,
        description="Continue each round from the previous round's model.",
    )
    warm_start_iterations: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Extra trees per warm round; unset, half a cold fit's trees: "
        "the fewest measured to keep the learning curve of cold retraining "
        "(benchmarks/results/warm_start.md).",
    )
    patience: int | None = Field(
        default=None,
        ge=1,
        le=1000,
        description="Stop after this many rounds without validation accuracy "
        "improving by more than min_improvement.",
    )
    min_improvement: float = Field(default=0.0, ge=0, le=1)
    label_budget: int | None = Field(
        default=None, ge=1, description="Stop before labeling more rows than this."
    )

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, name: str) -> str:
        from services.sampler.strategies import strategy_names

        known = strategy_names()
        if name not in known:
            raise ValueError(f"unknown strategy {name!r}; known: {', '.join(known)}")
        return name

    def initial_size(self, pool_size: int) -> int:
        """Return how many rows are labeled before the first round."""
        return max(2, round(self.initial_fraction * pool_size))

    def step_size(self, pool_size: int) -> int:
        """Return how many rows each round adds."""
        return max(1, round(self.step_fraction * pool_size))

    def round_params(self, warm: bool) -> CatBoostParams:
        """Return the CatBoost parameters of a round, warm-started or not."""
        if not warm:
            return self.params
        extra = self.warm_start_iterations or max(1, self.params.iterations // 2)
        return self.params.model_copy(update={"iterations": extra})

    def check_pool(self, pool_size: int) -> None:
        """Refuse a plan that needs more labels than the pool holds."""
        needed = self.initial_size(pool_size) + self.step_size(pool_size) * (
            self.rounds - 1
        )
        if needed > pool_size:
            raise ParameterError(
                f"{self.rounds} rounds from {self.initial_size(pool_size)} labels, "
                f"adding {self.step_size(pool_size)} per round, need {needed} "
                f"labels; the pool has {pool_size} rows (lower rounds, "
                "initial_fraction or step_fraction)"
            )


def validated(model: type[BaseModel], values: dict[str, Any]) -> Any:
    """Return ``model`` built from ``values``, or a ParameterError naming each field."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {_message(e['msg'])}"
            for e in exc.errors(include_url=False)
        )
        raise ParameterError(f"invalid {model.__name__}: {problems}") from None


def default_run_key(kind: str, detail: str, seed: int) -> str:
    """Return a fresh, readable run key."""
    import datetime as dt

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return re.sub(r"[^a-z0-9._-]", "-", f"{kind}-{detail}-seed{seed}-{stamp}".lower())


def run_key_for(key: str, label: str, seed: int) -> str:
    """Return the run key of one experiment of a comparison named ``key``."""
    return re.sub(r"[^a-z0-9.-]", "-", f"{key}-{label}-seed{seed}".lower())


def _message(text: str) -> str:
    return text.removeprefix("Value error, ")
