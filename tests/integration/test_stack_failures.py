"""A broken local stack says which component failed, why, and where its log is."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.local.ports import stack_port_settings
from deploy.local.settings import LocalStackSettings
from deploy.local.stack import LocalStack, StackError


@pytest.fixture
def fresh_settings(tmp_path: Path) -> LocalStackSettings:
    return LocalStackSettings(state_dir=tmp_path / "stack", **stack_port_settings())


@pytest.fixture
def held_port() -> Iterator[tuple[socket.socket, int]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    yield sock, sock.getsockname()[1]
    sock.close()


def test_up_refuses_a_taken_port_naming_it_and_its_component(
    fresh_settings: LocalStackSettings, held_port: tuple[socket.socket, int]
) -> None:
    _, port = held_port
    settings = fresh_settings.model_copy(update={"mlflow_port": port})
    stack = LocalStack(settings)

    with pytest.raises(StackError, match=rf"{port} \(MLflow tracking server, mlflow\)"):
        stack.up()

    assert not stack.is_running()


def test_up_names_the_component_and_its_log_when_not_healthy_in_time(
    fresh_settings: LocalStackSettings,
) -> None:
    settings = fresh_settings.model_copy(update={"startup_timeout_s": 1.0})
    stack = LocalStack(settings)

    try:
        with pytest.raises(StackError) as failure:
            stack.up()
    finally:
        stack.down()

    message = str(failure.value)
    assert "did not become healthy in 1 s" in message
    assert f"log: {stack.logs_dir}/" in message
    assert not stack.is_running()
