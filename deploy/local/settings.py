"""Settings of the local stack (environment prefix ``STACK_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[2]

Port = int


class LocalStackSettings(BaseSettings):
    """Where the local stack keeps its state and which loopback ports it uses."""

    model_config = SettingsConfigDict(env_prefix="STACK_", frozen=True)

    state_dir: Path = Field(
        default=REPO_ROOT / ".state",
        description="Data, logs, readiness files and the supervisor socket.",
    )
    kafka_port: Port = Field(default=9092, ge=1024, le=32767)
    s3_port: Port = Field(default=9000, ge=1024, le=32767)
    mlflow_port: Port = Field(default=5000, ge=1024, le=32767)
    prefect_port: Port = Field(default=4200, ge=1024, le=32767)
    # SeaweedFS runs a master, a volume server, a filer, an admin server and
    # the S3 gateway, each with an HTTP and a gRPC port; all but the S3 port are
    # internal and take consecutive ports from this base.
    objectstore_internal_port_base: Port = Field(default=19330, ge=1024, le=32758)
    trainers: int = Field(default=1, ge=1, le=16, description="Trainer replicas.")
    trainer_threads: int | None = Field(
        default=None,
        ge=1,
        le=64,
        description="CatBoost threads per trainer; unset, the replicas split "
        "the machine's cores.",
    )
    broker_storage: Literal["s3", "memory"] = Field(
        default="s3",
        description=(
            "s3 keeps topics, messages and committed offsets in the object store, "
            "so they survive a broker restart; memory is faster and loses them."
        ),
    )
    broker_bucket: str = Field(
        default="broker-log",
        min_length=3,
        max_length=63,
        description="Bucket that holds the broker's log when broker_storage is s3.",
    )
    startup_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=1800,
        description="How long each start-up stage may take before it is reported.",
    )

    @property
    def objectstore_internal_ports(self) -> dict[str, Port]:
        """Return SeaweedFS's internal ports by flag name."""
        names = (
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        )
        base = self.objectstore_internal_port_base
        return {name: base + offset for offset, name in enumerate(names)}


class ObjectStoreCredentials(BaseSettings):
    """Object-store keys, read from the variables the services read.

    Unset, the local stack generates a key pair once per state folder.
    """

    model_config = SettingsConfigDict(env_prefix="S3_", frozen=True)

    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
