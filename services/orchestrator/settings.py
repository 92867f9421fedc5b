"""Settings of the orchestrator service (environment prefix ``ORCHESTRATOR_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.platform.settings import PrefectSettings, ServiceSettings


class OrchestratorSettings(ServiceSettings):
    """Orchestrator settings; adds the Prefect group to the shared ones."""

    model_config = SettingsConfigDict(env_prefix="ORCHESTRATOR_", frozen=True)

    readiness_file: Path = Path("/tmp/orchestrator.ready")  # noqa: S108 (per-container path)
    prefect: PrefectSettings = Field(default_factory=PrefectSettings)
