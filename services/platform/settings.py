"""Settings groups shared by every service.

Each group reads its own environment prefix (``KAFKA_``, ``S3_``, ``MLFLOW_``,
``PREFECT_``), so the same variable names configure a service in local mode and
in compose. Service settings nest these groups and add their own prefix.
Settings are built once, at an entry point, with :func:`load_settings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.platform.errors import ConfigurationError


class KafkaSettings(BaseSettings):
    """How to reach the Kafka-protocol broker."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True)

    bootstrap_servers: str = Field(
        default="127.0.0.1:9092",
        description="Comma-separated host:port list of brokers.",
        examples=["127.0.0.1:9092", "kafka:9092"],
    )
    topic_prefix: str = Field(
        default="",
        max_length=64,
        pattern=r"^([a-z0-9][a-z0-9.-]*\.)?$",
        description="Prepended to every topic name, so several platforms (or "
        "test runs) can share one cluster. Empty, or ending in a dot.",
        examples=["", "staging."],
    )
    # The first group join waits for half the session timeout; a short one keeps
    # service start-up and rebalances quick.
    session_timeout_ms: int = Field(default=6000, ge=1000, le=300_000)
    request_timeout_ms: int = Field(default=15000, ge=1000, le=300_000)
    # A member that does not poll for this long is dropped from its group. The
    # worker keeps polling while a handler runs, so a long fit does not count.
    max_poll_interval_ms: int = Field(default=300_000, ge=1000, le=3_600_000)
    fetch_max_wait_ms: int = Field(
        default=100,
        ge=10,
        le=10_000,
        description="How long the broker may hold a consumer's fetch that finds "
        "no new record. Kafka answers a held fetch as soon as a record arrives; "
        "on the local broker (Tansu) a record can wait for much of this time. "
        "Shorter delivers sooner there; longer makes an idle consumer ask less "
        "often, which costs CPU in the client and the broker.",
    )
    group_stall_s: float = Field(
        default=30.0,
        ge=5,
        le=3600,
        description="How long a service's consumer may go without partitions of "
        "its topic, or without its group coordinator answering a heartbeat, "
        "before it leaves the group and joins it again with a new consumer.",
    )
    retry_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long the command client retries an unreachable broker "
        "(connecting, publishing a command) before failing with an error that "
        "names it.",
    )

    @model_validator(mode="after")
    def _fetch_wait_below_request_timeout(self) -> KafkaSettings:
        if self.fetch_max_wait_ms >= self.request_timeout_ms:
            raise ValueError(
                f"KAFKA_FETCH_MAX_WAIT_MS ({self.fetch_max_wait_ms}) must be below "
                f"KAFKA_REQUEST_TIMEOUT_MS ({self.request_timeout_ms}): every "
                "fetch the broker held would time out"
            )
        return self

    @property
    def servers(self) -> list[str]:
        """Return the bootstrap servers as a list."""
        return [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()]

    def physical(self, topic: str) -> str:
        """Return the broker's name for a topic named in the contracts."""
        return self.topic_prefix + topic

    def logical(self, topic: str) -> str:
        """Return the contracts' name for a topic as the broker names it."""
        return topic.removeprefix(self.topic_prefix)


class S3Settings(BaseSettings):
    """How to reach the S3-compatible object store, and the buckets it holds."""

    model_config = SettingsConfigDict(env_prefix="S3_", frozen=True)

    endpoint_url: str = Field(
        default="http://127.0.0.1:9000",
        description="S3 API endpoint.",
        examples=["http://127.0.0.1:9000", "http://minio:9000"],
    )
    access_key_id: SecretStr = Field(description="Access key of this service.")
    secret_access_key: SecretStr = Field(description="Secret key of this service.")
    region: str = "us-east-1"
    datasets_bucket: str = Field(default="datasets", min_length=3, max_length=63)
    models_bucket: str = Field(default="models", min_length=3, max_length=63)
    reports_bucket: str = Field(default="reports", min_length=3, max_length=63)
    mlflow_bucket: str = Field(default="mlflow-artifacts", min_length=3, max_length=63)
    ledger_bucket: str = Field(
        default="ledger",
        min_length=3,
        max_length=63,
        description="Answers to handled commands, for idempotent redelivery.",
    )
    retry_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a read or write is retried while the store is "
        "unreachable before it fails with an error that names the store.",
    )

    @property
    def buckets(self) -> tuple[str, ...]:
        """Return every bucket the platform stores into."""
        return (
            self.datasets_bucket,
            self.models_bucket,
            self.reports_bucket,
            self.mlflow_bucket,
            self.ledger_bucket,
        )


class MlflowSettings(BaseSettings):
    """How to reach the MLflow tracking server."""

    model_config = SettingsConfigDict(env_prefix="MLFLOW_", frozen=True)

    tracking_uri: str = Field(
        default="http://127.0.0.1:5000",
        examples=["http://127.0.0.1:5000", "http://mlflow:5000"],
    )
    retry_timeout_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a tracking call is retried while the server is "
        "unreachable before it fails with an error that names MLflow.",
    )


class PrefectSettings(BaseSettings):
    """How to reach the Prefect API."""

    model_config = SettingsConfigDict(env_prefix="PREFECT_", frozen=True)

    api_url: str = Field(
        default="http://127.0.0.1:4200/api",
        examples=["http://127.0.0.1:4200/api", "http://prefect:4200/api"],
    )


class ServiceSettings(BaseSettings):
    """What every service needs: the broker, the store, the tracking server."""

    model_config = SettingsConfigDict(frozen=True)

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    s3: S3Settings = Field(default_factory=S3Settings)
    mlflow: MlflowSettings = Field(default_factory=MlflowSettings)
    readiness_file: Path = Field(
        description="File the service refreshes while it is healthy; probes read it.",
    )
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")
    cache_dir: Path = Field(
        default=Path("/tmp/al-platform-cache"),  # noqa: S108 (content-checked cache)
        description="Local copies of datasets, checked against their hashes.",
    )
    startup_timeout_s: float = Field(
        default=120.0,
        gt=0,
        le=3600,
        description="How long to wait for the broker, store and MLflow at start.",
    )
    handler_max_attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts per command before giving up."
    )
    handler_backoff_s: float = Field(
        default=1.0, ge=0, le=300, description="First wait between attempts; doubles."
    )
    shutdown_grace_s: float = Field(
        default=20.0,
        ge=0,
        le=600,
        description="On SIGTERM, how long a running handler may finish before it "
        "is abandoned uncommitted (and redelivered).",
    )
    deployment: Literal["local", "compose", "production"] = Field(
        default="local",
        validation_alias="PLATFORM_DEPLOYMENT",
        description="Where the service runs; outside local mode the .env.example "
        "placeholders are refused.",
    )

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> ServiceSettings:
        if self.deployment == "local":
            return self
        placeholders = [
            name
            for name, secret in (
                ("S3_ACCESS_KEY_ID", self.s3.access_key_id),
                ("S3_SECRET_ACCESS_KEY", self.s3.secret_access_key),
            )
            if secret.get_secret_value().startswith(PLACEHOLDER_PREFIX)
        ]
        if placeholders:
            verb = "holds" if len(placeholders) == 1 else "hold"
            raise ValueError(
                f"{', '.join(placeholders)} still {verb} the .env.example "
                f"placeholder; set real values in .env before running in "
                f"{self.deployment} mode"
            )
        return self


# Every secret in .env.example starts with this, so a copied file is recognised.
PLACEHOLDER_PREFIX = "change-me"

SettingsT = TypeVar("SettingsT", bound=BaseSettings)


def load_settings(cls: type[SettingsT], **overrides: Any) -> SettingsT:
    """Build settings from the environment, naming each bad variable on failure.

    Raises:
        ConfigurationError: a required variable is missing or a value is invalid;
            the message lists every variable at fault and never its value.
    """
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(_describe(exc, cls)) from None


def _describe(exc: ValidationError, root: type[BaseSettings]) -> str:
    prefixes = _prefixes_by_title(root)
    prefix = prefixes.get(exc.title, "")
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        message = error["msg"].removeprefix("Value error, ")
        if not error["loc"]:
            problems.append(message)
            continue
        variable = prefix + "__".join(str(part) for part in error["loc"])
        if error["loc"][0] in _aliases(root):
            variable = str(error["loc"][0])
        problems.append(f"{variable.upper()}: {message}")
    return "invalid configuration: " + "; ".join(problems)


def _aliases(cls: type[BaseSettings]) -> set[str]:
    return {
        field.validation_alias
        for field in cls.model_fields.values()
        if isinstance(field.validation_alias, str)
    }


def _prefixes_by_title(cls: type[BaseSettings]) -> dict[str, str]:
    prefixes = {cls.__name__: str(cls.model_config.get("env_prefix", ""))}
    for field in cls.model_fields.values():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseSettings):
            prefixes.update(_prefixes_by_title(annotation))
    return prefixes
