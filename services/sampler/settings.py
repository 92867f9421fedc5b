"""Settings of the sampler service (environment prefix ``SAMPLER_``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.platform.settings import ServiceSettings


class SamplerSettings(ServiceSettings):
    """Sampler settings; the broker, store and MLflow groups are shared."""

    model_config = SettingsConfigDict(env_prefix="SAMPLER_", frozen=True)

    readiness_file: Path = Path("/tmp/sampler.ready")  # noqa: S108 (per-container path)
    chunk_rows: int = Field(
        default=50_000,
        ge=1_000,
        le=5_000_000,
        description="Rows scored at a time; bounds the sampler's memory.",
    )
    max_scoring_memory_mb: int = Field(
        default=512,
        ge=16,
        le=65_536,
        description="Declared bound on the memory the sampler's scoring may use; "
        "the sampler benchmark checks it.",
    )
    thread_count: int = Field(
        default=1,
        ge=1,
        le=64,
        description="CatBoost threads when scoring the pool.",
    )
