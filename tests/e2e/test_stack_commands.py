"""The README's stack commands, run as a user runs them, in both modes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

from deploy.local.ports import stack_port_settings


def _docker_engine_answers() -> bool:
    try:
        return (
            subprocess.run(
                ["docker", "info"], capture_output=True, timeout=20, check=False
            ).returncode
            == 0
        )
    except (OSError, subprocess.TimeoutExpired):
        return False


def _make(repo_root: Path, env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        ["make", *args],
        cwd=repo_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, (
        f"make {' '.join(args)} exited {result.returncode}\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    )
    return result.stdout


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            argv = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in argv:
            found.append(argv)
    return found


def _deployment_names(prefect_port: int) -> set[str]:
    """Return the flow names of the deployments the Prefect server holds."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{prefect_port}/api/deployments/filter",
        data=b"{}",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        found = json.load(response)
    flows = _flow_names(prefect_port, {d["flow_id"] for d in found})
    return {flows[d["flow_id"]] for d in found}


def _flow_names(prefect_port: int, flow_ids: set[str]) -> dict[str, str]:
    names = {}
    for flow_id in flow_ids:
        url = f"http://127.0.0.1:{prefect_port}/api/flows/{flow_id}"
        with urllib.request.urlopen(url, timeout=30) as response:
            names[flow_id] = json.load(response)["name"]
    return names


def test_make_up_status_logs_down_in_local_mode(
    repo_root: Path, tmp_path: Path
) -> None:
    ports = stack_port_settings()
    state_dir = tmp_path / "state"
    env = {
        **os.environ,
        "MODE": "local",
        "STACK_STATE_DIR": str(state_dir),
        **{f"STACK_{k.upper()}": str(v) for k, v in ports.items()},
    }
    env["COLUMNS"] = "200"

    try:
        up = _make(repo_root, env, "up", "TRAINERS=2")
        # A flow can be triggered the moment `make up` returns.
        deployments = _deployment_names(ports["prefect_port"])
        status = _make(repo_root, env, "status")
        logs = _make(repo_root, env, "logs", "P=trainer-1")
    finally:
        down = _make(repo_root, env, "down")

    assert {"baseline", "active-learning", "benchmark"} <= deployments
    assert f"http://127.0.0.1:{ports['mlflow_port']}" in up
    assert f"http://127.0.0.1:{ports['prefect_port']}" in up
    for process in ("objectstore", "broker", "mlflow", "prefect", "sampler"):
        assert process in status
    assert "trainer-0" in status and "trainer-1" in status
    assert " down " not in status
    assert "ready topic=trainer.commands group=trainer" in logs
    assert "no process of the stack is listening" in down
    internal = ports["objectstore_internal_port_base"]
    all_ports = [
        ports["kafka_port"],
        ports["s3_port"],
        ports["mlflow_port"],
        ports["prefect_port"],
        *range(internal, internal + 9),
    ]
    assert [p for p in all_ports if _listening(p)] == []
    assert _processes_mentioning(str(state_dir)) == []


@pytest.mark.compose
@pytest.mark.skipif(
    not _docker_engine_answers(),
    reason="no Docker engine answers `docker info` here; compose mode cannot run",
)
def test_make_up_status_down_in_compose_mode(repo_root: Path) -> None:
    secrets = {
        name: f"{name.lower().replace('_', '-')}-{os.urandom(6).hex()}"
        for name in (
            "S3_ACCESS_KEY_ID",
            "S3_SECRET_ACCESS_KEY",
            "MINIO_ROOT_USER",
            "MINIO_ROOT_PASSWORD",
            "POSTGRES_PASSWORD",
        )
    }
    ports = stack_port_settings()
    env = {
        **os.environ,
        **secrets,
        "POSTGRES_USER": "platform",
        "MLFLOW_PORT": str(ports["mlflow_port"]),
        "PREFECT_PORT": str(ports["prefect_port"]),
        "MODE": "compose",
    }

    try:
        _make(repo_root, env, "up", "TRAINERS=2")
        status = _make(repo_root, env, "status")
    finally:
        _make(repo_root, env, "down")

    for service in ("kafka", "minio", "postgres", "mlflow", "prefect", "sampler"):
        assert service in status
    assert "unhealthy" not in status
