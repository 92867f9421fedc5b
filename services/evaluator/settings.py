"""Settings of the evaluator service (environment prefix ``EVALUATOR_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import SettingsConfigDict

from services.platform.settings import ServiceSettings


class EvaluatorSettings(ServiceSettings):
    """Evaluator settings; the broker, store and MLflow groups are shared."""

    model_config = SettingsConfigDict(env_prefix="EVALUATOR_", frozen=True)

    readiness_file: Path = Path("/tmp/evaluator.ready")  # noqa: S108 (per-container path)
