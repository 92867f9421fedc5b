"""The local stack's servers are real and wired together as the services expect."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import urllib.request

import pytest
from kafka import KafkaConsumer, KafkaProducer

from contracts.topics import DEAD_LETTER_TOPIC, SAMPLER_COMMANDS, TOPICS
from deploy.local.stack import LocalStack
from services.platform.objectstore import make_s3_client
from services.platform.readiness import check as check_readiness
from services.platform.settings import S3Settings


def _s3(stack: LocalStack):
    return stack.object_store().client


def test_status_reports_every_component_healthy(local_stack: LocalStack) -> None:
    statuses = local_stack.status()

    names = {s.name for s in statuses}
    assert {"objectstore", "broker", "mlflow", "prefect"} <= names
    assert {"sampler", "trainer-0", "trainer-1", "evaluator", "orchestrator"} <= names
    unhealthy = [(s.name, s.state, s.detail) for s in statuses if not s.healthy]
    assert unhealthy == []


def test_every_contract_topic_exists_with_its_partition_count(
    local_stack: LocalStack,
) -> None:
    bootstrap = local_stack.client_env()["KAFKA_BOOTSTRAP_SERVERS"]
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        for topic in TOPICS:
            partitions = consumer.partitions_for_topic(topic.name)
            assert partitions is not None, f"topic {topic.name} missing"
            assert len(partitions) == topic.partitions, topic.name
    finally:
        consumer.close()


def test_every_bucket_exists_and_keys_are_enforced(local_stack: LocalStack) -> None:
    env = local_stack.client_env()
    names = {b["Name"] for b in _s3(local_stack).list_buckets()["Buckets"]}
    expected = S3Settings(
        access_key_id=env["S3_ACCESS_KEY_ID"],
        secret_access_key=env["S3_SECRET_ACCESS_KEY"],
    ).buckets

    assert set(expected) <= names

    from botocore.exceptions import ClientError

    intruder = make_s3_client(
        env["S3_ENDPOINT_URL"], "nobody", "wrong-secret-key", "us-east-1"
    )
    with pytest.raises(ClientError, match=r"InvalidAccessKeyId|AccessDenied|Signature"):
        intruder.list_buckets()


def test_mlflow_server_keeps_artifacts_in_the_object_store(
    local_stack: LocalStack, unique: str
) -> None:
    env = local_stack.client_env()
    script = textwrap.dedent(
        f"""
        import mlflow
        mlflow.set_experiment("stack-check-{unique}")
        with mlflow.start_run() as run:
            mlflow.log_metric("accuracy", 0.5)
            mlflow.log_text("hello", "notes/hello.txt")
        print(run.info.run_id)
        """
    )
    # The client gets no object-store keys: artifacts go through MLflow's proxy.
    client_env = {
        k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3_"))
    }
    client_env["MLFLOW_TRACKING_URI"] = env["MLFLOW_TRACKING_URI"]
    run_id = _run_python(script, client_env).splitlines()[-1]

    objects = _s3(local_stack).list_objects_v2(Bucket="mlflow-artifacts")
    keys = [o["Key"] for o in objects.get("Contents", [])]
    assert any(k.endswith(f"{run_id}/artifacts/notes/hello.txt") for k in keys), keys


def test_prefect_server_runs_a_flow_to_completion(
    local_stack: LocalStack, unique: str
) -> None:
    api = local_stack.client_env()["PREFECT_API_URL"]
    script = textwrap.dedent(
        f"""
        from prefect import flow

        @flow(name="stack-check-{unique}")
        def check() -> int:
            return 42

        print(check())
        """
    )
    _run_python(script, {**os.environ, "PREFECT_API_URL": api})

    body = json.dumps({"flows": {"name": {"any_": [f"stack-check-{unique}"]}}})
    request = urllib.request.Request(  # noqa: S310 (http URL of the test stack)
        f"{api}/flow_runs/filter",
        data=body.encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (same)
        runs = json.load(response)
    assert [r["state"]["type"] for r in runs] == ["COMPLETED"]


def test_service_dead_letters_what_it_cannot_handle_and_keeps_serving(
    local_stack: LocalStack, unique: str
) -> None:
    bootstrap = local_stack.client_env()["KAFKA_BOOTSTRAP_SERVERS"]
    poison = f"not a command {unique}".encode()
    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send(SAMPLER_COMMANDS, poison).get(timeout=30)
    producer.close()

    dead = _find_dead_letter(bootstrap, unique, timeout_s=60)

    assert dead["topic"] == SAMPLER_COMMANDS
    assert dead["service"] == "sampler"
    assert dead["reason"].startswith("not JSON")
    assert isinstance(dead["offset"], int)
    sampler = next(s for s in local_stack.status() if s.name == "sampler")
    assert sampler.healthy, sampler.detail


def test_service_stops_cleanly_on_sigterm_and_starts_again(
    local_stack: LocalStack,
) -> None:
    rpc = local_stack._rpc()
    log = local_stack.log_path("evaluator")
    before = log.read_text().count("stopped cleanly")

    rpc.supervisor.stopProcess("evaluator", True)  # supervisord sends SIGTERM

    info = rpc.supervisor.getProcessInfo("evaluator")
    assert info["statename"] == "STOPPED"
    assert log.read_text().count("stopped cleanly") == before + 1
    readiness = local_stack.state_dir / "run" / "evaluator.ready"
    assert not readiness.exists()

    rpc.supervisor.startProcess("evaluator", True)
    deadline = time.monotonic() + 60
    while check_readiness(readiness) is not None:
        assert time.monotonic() < deadline, check_readiness(readiness)
        time.sleep(0.5)


def test_supervisor_config_holds_no_secret(local_stack: LocalStack) -> None:
    secret = local_stack.client_env()["S3_SECRET_ACCESS_KEY"]
    config = (local_stack.state_dir / "supervisord.conf").read_text()

    assert secret not in config
    assert oct((local_stack.state_dir / "credentials").stat().st_mode)[-3:] == "600"


def _run_python(script: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.strip()


def _find_dead_letter(bootstrap: str, marker: str, timeout_s: float) -> dict:
    consumer = KafkaConsumer(
        DEAD_LETTER_TOPIC,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for record in consumer:
                envelope = json.loads(record.value)
                if marker in envelope.get("payload", ""):
                    return envelope
    finally:
        consumer.close()
    raise AssertionError(f"no dead letter carrying {marker!r} within {timeout_s} s")
