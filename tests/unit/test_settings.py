"""Settings name the variable at fault and never show a secret."""

from __future__ import annotations

import re

import pytest

from services.evaluator.settings import EvaluatorSettings
from services.orchestrator.settings import OrchestratorSettings
from services.platform.errors import ConfigurationError
from services.platform.settings import load_settings
from services.sampler.settings import SamplerSettings
from services.trainer.settings import TrainerSettings

SERVICE_SETTINGS = [
    TrainerSettings,
    SamplerSettings,
    EvaluatorSettings,
    OrchestratorSettings,
]


@pytest.fixture(autouse=True)
def _service_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("S3_ACCESS_KEY_ID", "unit-key")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "unit-very-secret-value")


def test_missing_secret_names_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("S3_SECRET_ACCESS_KEY")

    with pytest.raises(
        ConfigurationError, match="S3_SECRET_ACCESS_KEY: Field required"
    ):
        load_settings(TrainerSettings)


def test_out_of_range_value_names_the_service_prefixed_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRAINER_THREAD_COUNT", "0")

    with pytest.raises(ConfigurationError, match="TRAINER_THREAD_COUNT: Input should"):
        load_settings(TrainerSettings)


def test_fetch_wait_past_the_request_timeout_names_both_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "5000")
    monkeypatch.setenv("KAFKA_REQUEST_TIMEOUT_MS", "3000")

    with pytest.raises(
        ConfigurationError,
        match=r"KAFKA_FETCH_MAX_WAIT_MS \(5000\) must be below "
        r"KAFKA_REQUEST_TIMEOUT_MS \(3000\)",
    ):
        load_settings(SamplerSettings)


def test_fetch_wait_reaches_every_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_FETCH_MAX_WAIT_MS", "500")

    for settings in SERVICE_SETTINGS:
        assert load_settings(settings).kafka.fetch_max_wait_ms == 500


def test_secret_value_appears_in_no_repr_and_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings(TrainerSettings)
    assert "unit-very-secret-value" not in repr(settings)
    assert "unit-very-secret-value" not in str(settings.model_dump())

    monkeypatch.setenv("S3_REGION", "x" * 0)
    monkeypatch.setenv("KAFKA_SESSION_TIMEOUT_MS", "not-a-number")
    with pytest.raises(ConfigurationError) as failure:
        load_settings(TrainerSettings)
    assert "KAFKA_SESSION_TIMEOUT_MS" in str(failure.value)
    assert "unit-very-secret-value" not in str(failure.value)


@pytest.mark.parametrize("settings_class", SERVICE_SETTINGS)
def test_every_service_reads_the_shared_variable_names(
    settings_class: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "broker-a:9092,broker-b:9092")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://store:9000")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://tracking:5000")

    settings = load_settings(settings_class)

    assert settings.kafka.servers == ["broker-a:9092", "broker-b:9092"]
    assert settings.s3.endpoint_url == "http://store:9000"
    assert settings.mlflow.tracking_uri == "http://tracking:5000"


def test_orchestrator_reads_the_prefect_api_url(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFECT_API_URL", "http://prefect:4200/api")

    assert load_settings(OrchestratorSettings).prefect.api_url == (
        "http://prefect:4200/api"
    )


def test_placeholder_secrets_are_refused_outside_local_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PLATFORM_DEPLOYMENT", "compose")
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "change-me-services-secret")

    with pytest.raises(
        ConfigurationError,
        match=r"S3_SECRET_ACCESS_KEY still holds the \.env\.example placeholder; set "
        r"real values in \.env before running in compose mode",
    ):
        load_settings(TrainerSettings)


def test_placeholder_secrets_are_accepted_in_local_mode(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("S3_SECRET_ACCESS_KEY", "change-me-services-secret")

    assert load_settings(TrainerSettings).deployment == "local"


def test_every_secret_in_env_example_is_a_recognised_placeholder() -> None:
    from pathlib import Path

    from services.platform.settings import PLACEHOLDER_PREFIX

    example = Path(__file__).resolve().parents[2] / ".env.example"
    secrets = [
        line.split("=", 1)[1]
        for line in example.read_text().splitlines()
        if line.split("=", 1)[0].endswith(("_KEY_ID", "_SECRET_ACCESS_KEY", "PASSWORD"))
    ]

    assert len(secrets) == 4
    assert all(s.startswith(PLACEHOLDER_PREFIX) for s in secrets)


def test_unknown_deployment_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLATFORM_DEPLOYMENT", "cloud")

    with pytest.raises(
        ConfigurationError, match="PLATFORM_DEPLOYMENT: Input should be"
    ):
        load_settings(TrainerSettings)


# What a committed credential looks like: a private key, a cloud access key id,
# or a secret-named variable given a literal value.
_CREDENTIAL = re.compile(
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
    r"|^\s*[A-Z0-9_]*(?:SECRET|PASSWORD)[A-Z0-9_]*\s*[=:]\s*[\"']?(?![\"'$<{]|change-me)"
    r"[^\s\"'#]{6,}",
    re.MULTILINE,
)


def test_no_file_in_the_repository_holds_a_credential() -> None:
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    found = []
    for name in tracked:
        path = root / name
        if not path.is_file() or path.stat().st_size > 1_000_000:
            continue
        text = path.read_text(errors="ignore")
        found.extend(f"{name}: {m.group(0)[:40]}" for m in _CREDENTIAL.finditer(text))

    assert len(tracked) > 50
    assert found == []
