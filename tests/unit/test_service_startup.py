"""A service started wrongly exits at once with a message naming the problem."""

from __future__ import annotations

import os
import subprocess
import sys

from deploy.local.ports import free_port_block


def _run_trainer(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("S3_", "KAFKA_"))}
    return subprocess.run(
        [sys.executable, "-m", "services.trainer"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_missing_required_variable_exits_2_naming_it() -> None:
    result = _run_trainer({"S3_ACCESS_KEY_ID": "k"})

    assert result.returncode == 2
    assert "S3_SECRET_ACCESS_KEY: Field required" in result.stderr


def test_unreachable_broker_exits_1_naming_component_and_address(tmp_path) -> None:
    closed_port = free_port_block(1)
    result = _run_trainer(
        {
            "S3_ACCESS_KEY_ID": "k",
            "S3_SECRET_ACCESS_KEY": "s",
            "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{closed_port}",
            "TRAINER_STARTUP_TIMEOUT_S": "2",
            "TRAINER_READINESS_FILE": str(tmp_path / "trainer.ready"),
        }
    )

    assert result.returncode == 1
    assert f"broker at 127.0.0.1:{closed_port} did not answer within 2 s" in (
        result.stderr
    )
    assert not (tmp_path / "trainer.ready").exists()
