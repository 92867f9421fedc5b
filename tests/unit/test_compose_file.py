"""docker-compose.yml, checked offline: valid, pinned, healthy, twin of local mode.

No Docker engine runs here; the Compose v2 binary validates and resolves the
file without one.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from contracts.topics import TOPICS
from deploy.local.programs import (
    PREFECT_SERVER_TUNING,
    SERVICE_NAMES,
    client_environment,
    service_command,
)
from deploy.local.settings import LocalStackSettings
from services.evaluator.settings import EvaluatorSettings
from services.orchestrator.settings import OrchestratorSettings
from services.platform.settings import S3Settings
from services.sampler.settings import SamplerSettings
from services.trainer.settings import TrainerSettings

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
COMPOSE = BIN.parent / "lib/python3.11/site-packages/compose/docker-compose"
INFRASTRUCTURE = ("kafka", "minio", "postgres", "mlflow", "prefect")
SETTINGS = {
    "sampler": SamplerSettings,
    "trainer": TrainerSettings,
    "evaluator": EvaluatorSettings,
    "orchestrator": OrchestratorSettings,
}


def _compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(COMPOSE), "--env-file", str(env_file), "-f", "docker-compose.yml", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    result = _compose(
        "--profile", "ui", "config", "--format", "json", env_file=REPO / ".env.example"
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"]


def test_compose_file_is_valid_for_compose_and_the_compose_spec() -> None:
    assert _compose("config", "--quiet", env_file=REPO / ".env.example").returncode == 0
    schema = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            "docker-compose.yml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert schema.returncode == 0, schema.stdout + schema.stderr


def test_compose_refuses_to_start_without_secrets_naming_them(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")

    result = _compose("config", "--quiet", env_file=empty)

    assert result.returncode != 0
    assert "required variable" in result.stderr
    assert "see .env.example" in result.stderr


def test_no_container_names_and_every_image_pinned(resolved: dict[str, Any]) -> None:
    for name, service in resolved.items():
        assert "container_name" not in service, f"{name} blocks --scale"
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest", f"{name}: {image} not pinned"


def test_every_long_running_service_has_a_healthcheck(resolved: dict[str, Any]) -> None:
    for name in (*INFRASTRUCTURE, *SERVICE_NAMES):
        test = resolved[name].get("healthcheck", {}).get("test")
        assert test, f"{name} has no healthcheck"


def test_dependents_wait_for_health_or_completion(resolved: dict[str, Any]) -> None:
    conditions = {
        (name, dependency, spec["condition"])
        for name, service in resolved.items()
        for dependency, spec in service.get("depends_on", {}).items()
    }
    assert conditions
    allowed = {"service_healthy", "service_completed_successfully"}
    assert {c for c in conditions if c[2] not in allowed} == set()
    for name in SERVICE_NAMES:
        assert (name, "kafka-init", "service_completed_successfully") in conditions
        assert (name, "minio-init", "service_completed_successfully") in conditions


def test_init_jobs_create_every_contract_topic_and_bucket(
    resolved: dict[str, Any],
) -> None:
    topics = resolved["kafka-init"]["environment"]["TOPICS"].split()
    buckets = resolved["minio-init"]["environment"]["BUCKETS"].split()
    defaults = S3Settings(access_key_id="k", secret_access_key="s")

    assert sorted(topics) == sorted(f"{t.name}:{t.partitions}" for t in TOPICS)
    assert sorted(buckets) == sorted(defaults.buckets)


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_each_service_matches_its_local_twin(
    resolved: dict[str, Any], name: str
) -> None:
    service = resolved[name]
    local_variables = {
        *client_environment(LocalStackSettings()),
        "S3_ACCESS_KEY_ID",
        "S3_SECRET_ACCESS_KEY",
        f"{name.upper()}_READINESS_FILE",
    }
    if name != "orchestrator":
        local_variables.discard("PREFECT_API_URL")

    assert service["command"] == list(service_command(name))
    assert local_variables <= set(service["environment"])
    known = _settings_variables(SETTINGS[name]) | {"PREFECT_API_URL"}
    assert set(service["environment"]) <= known, (
        "compose sets a variable no setting reads"
    )
    readiness = service["environment"][f"{name.upper()}_READINESS_FILE"]
    assert readiness in service["healthcheck"]["test"]


def test_prefect_server_is_tuned_as_in_local_mode(resolved: dict[str, Any]) -> None:
    environment = resolved["prefect"]["environment"]

    assert {k: environment.get(k) for k in PREFECT_SERVER_TUNING} == (
        PREFECT_SERVER_TUNING
    )


def test_only_the_ui_ports_are_published_and_only_on_loopback(
    resolved: dict[str, Any],
) -> None:
    published = {
        name: [(p.get("host_ip"), p["target"]) for p in service.get("ports", [])]
        for name, service in resolved.items()
        if service.get("ports")
    }

    assert set(published) == {"mlflow", "prefect", "kafka-ui"}
    assert all(ip == "127.0.0.1" for ports in published.values() for ip, _ in ports)


def test_dockerfiles_pass_hadolint() -> None:
    dockerfiles = sorted((REPO / "deploy" / "docker").glob("*.Dockerfile"))
    assert dockerfiles
    result = subprocess.run(
        [str(BIN / "hadolint"), *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _settings_variables(settings_class: type) -> set[str]:
    variables = set()
    prefix = settings_class.model_config.get("env_prefix", "")
    for field_name, field in settings_class.model_fields.items():
        annotation = field.annotation
        if isinstance(field.validation_alias, str):
            variables.add(field.validation_alias)
            continue
        nested = getattr(annotation, "model_config", None)
        if nested is not None and hasattr(annotation, "model_fields"):
            variables |= _settings_variables(annotation)
        else:
            variables.add(f"{prefix}{field_name}".upper())
    return variables
