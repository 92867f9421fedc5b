"""Settings of the trainer service (environment prefix ``TRAINER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.platform.settings import ServiceSettings


class TrainerSettings(ServiceSettings):
    """Trainer settings; the broker, store and MLflow groups are shared."""

    model_config = SettingsConfigDict(env_prefix="TRAINER_", frozen=True)

    readiness_file: Path = Path("/tmp/trainer.ready")  # noqa: S108 (per-container path)
    thread_count: int = Field(
        default=1,
        ge=1,
        le=64,
        description="CatBoost threads per fit; replicas on a machine share its cores.",
    )
