"""Settings of the orchestrator service (environment prefix ``ORCHESTRATOR_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.platform.settings import PrefectSettings, ServiceSettings


class OrchestratorSettings(ServiceSettings):
    """Orchestrator settings; adds the Prefect group to the shared ones."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", frozen=True)

    readiness_file: Path = Path("/tmp/orchestrator.ready")  # noqa: S108 (per-container path)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
    baseline_experiment: str = Field(
        default="baseline",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][\w.-]*$",
    )
    active_learning_experiment: str = Field(
        default="active-learning",
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][\w.-]*$",
    )
    command_timeout_s: float = Field(
        default=1800,
        gt=0,
        le=86_400,
        description="How long a flow waits for one service to answer a command.",
    )
    deployment_name: str = Field(
        default="default",
        pattern=r"^[a-z0-9][a-z0-9-]{0,62}$",
        description="Name of the deployments this orchestrator serves.",
    )
    schedules_active: bool = Field(
        default=True, description="Whether the served deployments' schedules run."
    )
    baseline_cron: str = Field(default="0 2 * * *", description="Baseline schedule.")
    active_learning_cron: str = Field(
        default="30 2 * * *", description="Active-learning schedule."
    )
    schedule_interval_s: int | None = Field(
        default=None,
        ge=10,
        description="If set, both schedules run every this many seconds instead.",
    )
    baseline_parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters (JSON) of the baseline deployment's runs.",
    )
    active_learning_parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters (JSON) of the active-learning deployment's runs.",
    )
    flow_run_limit: int = Field(
        default=4, ge=1, le=64, description="Flow runs served at the same time."
    )
