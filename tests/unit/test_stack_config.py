"""The local stack's programs and supervisord configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from deploy.local.programs import BinaryMissingError, _venv_binary, build_programs
from deploy.local.settings import LocalStackSettings
from deploy.local.supervisor_config import render

BUCKETS = ("datasets", "models", "reports", "mlflow-artifacts")


def _programs(tmp_path: Path, **overrides: object):
    settings = LocalStackSettings(state_dir=tmp_path, **overrides)
    return build_programs(settings, BUCKETS, "broker-log", "mlflow-artifacts")


def test_default_ports_are_the_well_known_ones(tmp_path: Path) -> None:
    ports = {p.name: p.ports for p in _programs(tmp_path)}

    assert ports["broker"]["kafka"] == 9092
    assert ports["objectstore"]["s3"] == 9000
    assert ports["mlflow"]["mlflow"] == 5000
    assert ports["prefect"]["prefect"] == 4200


def test_every_port_of_the_stack_is_distinct(tmp_path: Path) -> None:
    ports = [port for p in _programs(tmp_path) for port in p.ports.values()]

    assert len(ports) == len(set(ports))


def test_trainer_replicas_get_their_own_names_logs_and_readiness_files(
    tmp_path: Path,
) -> None:
    programs = _programs(tmp_path, trainers=3)
    trainer = next(p for p in programs if p.name == "trainer")

    text = render(programs, tmp_path / "s.sock", tmp_path, tmp_path / "logs")

    assert trainer.process_names == ["trainer-0", "trainer-1", "trainer-2"]
    section = text.split("[program:trainer]")[1].split("[program:")[0]
    assert "numprocs = 3" in section
    assert "process_name = %(program_name)s-%(process_num)d" in section
    assert f"{tmp_path}/logs/trainer-%(process_num)d.log" in section
    assert f"{tmp_path}/run/trainer-%(process_num)d.ready" in section


def test_programs_stop_as_a_process_group(tmp_path: Path) -> None:
    text = render(_programs(tmp_path), tmp_path / "s.sock", tmp_path, tmp_path)

    assert text.count("stopasgroup = true") == text.count("[program:")
    assert text.count("killasgroup = true") == text.count("[program:")
    assert text.count("autostart = false") == text.count("[program:")


def test_broker_storage_follows_the_setting(tmp_path: Path) -> None:
    durable = next(p for p in _programs(tmp_path) if p.name == "broker")
    memory = next(
        p for p in _programs(tmp_path, broker_storage="memory") if p.name == "broker"
    )

    assert "s3://broker-log/" in durable.command
    assert "memory://tansu/" in memory.command


def test_missing_binary_says_what_to_install() -> None:
    with pytest.raises(
        BinaryMissingError, match=r"'no-such-binary-x' not found.*make install"
    ):
        _venv_binary("no-such-binary-x", "Example")
