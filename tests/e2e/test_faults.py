"""Faults injected into the running local stack, and what survives them.

Each test runs the same small active-learning flow as an undisturbed
reference run (one per module), breaks something mid-flow, and requires the
flow to complete with the same selected rows and the same scores in every
round: a replica or a service killed, the orchestrator's flow killed and run
again, the broker, the object store or MLflow stopped for a few seconds,
malformed messages on every topic a service reads. Each test records what it
saw as one row of the README's "Faults" table, which is rewritten at the end
of the module only if every fault test passed.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from contracts import (
    BatchSelected,
    EvaluateModel,
    ModelEvaluated,
    ModelTrained,
    SelectBatch,
    TrainModel,
)
from contracts.envelope import Message
from contracts.registry import MAX_MESSAGE_BYTES
from contracts.topics import (
    DEAD_LETTER_TOPIC,
    EVALUATOR_COMMANDS,
    EVALUATOR_EVENTS,
    SAMPLER_COMMANDS,
    SAMPLER_EVENTS,
    TRAINER_COMMANDS,
    TRAINER_EVENTS,
)
from deploy.local.stack import LocalStack
from services.orchestrator.experiment import RunState, read_state
from services.platform.bus import CommandClient
from services.platform.errors import ComponentUnavailableError
from services.platform.objectstore import ObjectStore, ObjectStoreUnavailableError
from services.platform.settings import KafkaSettings
from tests.contract_strategies import models
from tests.fault_harness import (
    FaultTable,
    Flow,
    LogWatch,
    answered,
    assert_one_run_per_round_and_one_version,
    assert_same_results,
    final_state,
    kill,
    received,
    restore,
    start,
    stop,
)

# Each fit takes two to five seconds on one core: long enough to kill a
# trainer in the middle of it, short enough for the module to stay quick.
PARAMETERS: dict[str, Any] = {
    "strategy": "margin",
    "rounds": 3,
    "seed": 42,
    "params": {"iterations": 600, "learning_rate": 0.3},
}
TRAINERS = ("trainer-0", "trainer-1")
SERVICES = (*TRAINERS, "sampler", "evaluator")
# A window short enough for a test to wait out, for the requests that must fail.
SHORT_WINDOW_S = 2.0

FAULTS = (
    "trainer replica SIGKILLed mid-fit",
    "sampler SIGKILLed mid-flow",
    "evaluator SIGKILLed mid-flow",
    "orchestrator's flow SIGKILLed mid-round, then run again",
    "broker stopped for a few seconds",
    "object store stopped for a few seconds",
    "MLflow stopped for a few seconds",
    "broker or MLflow down for longer than the retry window",
    "malformed messages on every topic a service reads",
)


@pytest.fixture(scope="module")
def fault_table() -> Iterator[FaultTable]:
    """Collect one row per fault; write the README's table if all passed."""
    table = FaultTable(FAULTS)
    yield table
    if table.complete():
        table.write()


@pytest.fixture(scope="module")
def flows(
    local_stack: LocalStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FlowFactory]:
    """Make flows with fresh run keys; kill any left running at the end."""
    factory = FlowFactory(local_stack, tmp_path_factory.mktemp("flows"))
    yield factory
    for flow in factory.made:
        if flow.process is not None:
            flow.kill()


class FlowFactory:
    """Flows of the module's parameters, each under its own run key."""

    def __init__(self, stack: LocalStack, folder: Path) -> None:
        self.stack = stack
        self.folder = folder
        self.made: list[Flow] = []
        self.dataset = "digits"

    def new(self, label: str) -> Flow:
        """Return a flow with a fresh run key (not started)."""
        run_key = f"fault-{label}-{uuid.uuid4().hex[:6]}"
        flow = Flow(
            run_key,
            {**PARAMETERS, "dataset": self.dataset},
            self.folder / f"{run_key}.log",
        )
        self.made.append(flow)
        return flow


@pytest.fixture(scope="module")
def reference(local_stack: LocalStack, flows: FlowFactory) -> RunState:
    """Run the flow once, undisturbed: what every faulted run must match."""
    flow = flows.new("reference").start(local_stack)
    flow.completes()
    state = final_state(local_stack.object_store(), flow.run_key)
    # Later runs name the registered snapshot: the same rows, no re-upload.
    flows.dataset = state.dataset.dataset_id
    return state


@pytest.fixture(autouse=True)
def healthy_afterwards(local_stack: LocalStack) -> Iterator[None]:
    """Leave every process running and healthy for the tests that follow."""
    yield
    restore(local_stack)


def _finished_like_reference(
    stack: LocalStack, flow: Flow, reference: RunState
) -> RunState:
    state = final_state(stack.object_store(), flow.run_key)
    assert_same_results(state, reference)
    assert_one_run_per_round_and_one_version(
        stack.client_env()["MLFLOW_TRACKING_URI"], state
    )
    return state


# -- processes killed ----------------------------------------------------------


def test_trainer_killed_mid_fit_is_replaced_and_nothing_is_trained_twice(
    local_stack: LocalStack,
    flows: FlowFactory,
    reference: RunState,
    fault_table: FaultTable,
) -> None:
    logs = LogWatch.of(local_stack, *TRAINERS)
    flow = flows.new("trainer").start(local_stack)
    # Round 1's command: round 0 has warmed the replicas up.
    found = logs.wait_for(
        received("TrainModel", flow.correlation_id), 120, "round 1's fit", count=2
    )
    victim, line = found[1]
    command = line["id"]
    kill(local_stack, victim)
    victim_log = logs.text(victim)

    flow.completes()

    _finished_like_reference(local_stack, flow, reference)
    assert not re.search(answered(command), victim_log), (
        f"{victim} answered before it was killed: the fit was too short"
    )
    answers = logs.matching(answered(command))
    assert len(answers) == 1, f"round 1 was answered {len(answers)} times"
    fault_table.record(
        FAULTS[0],
        "the command was delivered again and trained once, by the surviving "
        "or the restarted replica; one FINISHED MLflow run per round and "
        "one registered model version; rows and scores identical",
        "none",
    )


def test_sampler_and_evaluator_killed_mid_flow_are_restarted_and_it_completes(
    local_stack: LocalStack,
    flows: FlowFactory,
    reference: RunState,
    fault_table: FaultTable,
) -> None:
    logs = LogWatch.of(local_stack, "sampler", "evaluator")
    flow = flows.new("services").start(local_stack)
    logs.wait_for(received("SelectBatch", flow.correlation_id), 120, "a selection")
    kill(local_stack, "sampler")
    logs.wait_for(
        received("EvaluateModel", flow.correlation_id),
        120,
        "round 1's evaluation",
        count=2,
    )
    kill(local_stack, "evaluator")

    flow.completes()

    _finished_like_reference(local_stack, flow, reference)
    starts = {
        name: len(re.findall(r"dependencies answered", logs.text(name)))
        for name in ("sampler", "evaluator")
    }
    assert starts == {"sampler": 1, "evaluator": 1}, f"restarts seen: {starts}"
    for fault, service in ((FAULTS[1], "sampler"), (FAULTS[2], "evaluator")):
        fault_table.record(
            fault,
            f"supervisord restarted the {service}, which answered the command "
            "delivered again; flow completed; rows and scores identical",
            "none",
        )


def test_flow_killed_mid_round_resumes_from_its_last_completed_round(
    local_stack: LocalStack,
    flows: FlowFactory,
    reference: RunState,
    fault_table: FaultTable,
) -> None:
    objects = local_stack.object_store()
    logs = LogWatch.of(local_stack, *TRAINERS)
    flow = flows.new("orchestrator").start(local_stack)
    found = logs.wait_for(
        received("TrainModel", flow.correlation_id), 120, "round 1's fit", count=2
    )
    flow.kill()
    interrupted = read_state(objects, "reports", flow.run_key)
    assert interrupted is not None and not interrupted.finished
    done = len(interrupted.rounds)
    assert done < len(reference.rounds)

    flow.start(local_stack).completes()

    state = _finished_like_reference(local_stack, flow, reference)
    assert state.parent_run_id == interrupted.parent_run_id, "it started afresh"
    assert [r.model for r in state.rounds[:done]] == [
        r.model for r in interrupted.rounds
    ], "a completed round was trained again"
    for _, line in found:
        answers = logs.matching(answered(line["id"]))
        assert len(answers) == 1, f"a round was trained {len(answers)} times"
    fault_table.record(
        FAULTS[3],
        "run again with the same run key, it resumed after its last recorded "
        "round; the repeated command was answered from the ledger; one "
        "FINISHED MLflow run per round; rows and scores identical",
        "none",
    )


# -- servers unavailable ---------------------------------------------------------


def test_broker_stopped_for_seconds_is_retried_and_the_flow_completes(
    local_stack: LocalStack,
    flows: FlowFactory,
    reference: RunState,
    fault_table: FaultTable,
) -> None:
    """Stop the broker as a flow starts; start it again a few seconds later.

    The orchestrator retries with a WARNING naming the broker; a request
    whose retry window is shorter than the outage fails naming the broker.
    """
    env = local_stack.client_env()
    address = env["KAFKA_BOOTSTRAP_SERVERS"]
    flow = flows.new("broker")
    stop(local_stack, "broker")
    try:
        short = KafkaSettings(bootstrap_servers=address, retry_timeout_s=SHORT_WINDOW_S)
        with pytest.raises(ComponentUnavailableError) as refused:
            CommandClient("fault-test", short).start()
        flow.start(local_stack)
        _wait_for_text(flow.log, f"broker at {address} unavailable", 60)
    finally:
        start(local_stack, "broker")

    flow.completes()

    _finished_like_reference(local_stack, flow, reference)
    assert str(refused.value).startswith(
        f"broker at {address} unavailable after {SHORT_WINDOW_S:g} s: "
    )
    fault_table.record(
        FAULTS[4],
        "the orchestrator retried with backoff, logging WARNINGs naming the "
        "broker and its address; the services reconnected; flow completed; "
        "rows and scores identical; a request with a 2 s window failed naming "
        "the broker",
        "none",
    )


def test_object_store_stopped_for_seconds_is_retried_and_the_flow_completes(
    local_stack: LocalStack,
    flows: FlowFactory,
    reference: RunState,
    fault_table: FaultTable,
) -> None:
    """Stop the object store while a trainer fits; start it a few seconds later.

    The broker keeps its log in the object store, so the broker cannot read
    or write its topics either while the store is down.
    """
    env = local_stack.client_env()
    address = env["S3_ENDPOINT_URL"]
    flow = flows.new("objectstore")
    logs = _with_flow(LogWatch.of(local_stack, *SERVICES), flow)
    flow.start(local_stack)
    logs.wait_for(
        received("TrainModel", flow.correlation_id), 120, "round 1's fit", count=2
    )
    stop(local_stack, "objectstore")
    try:
        short = ObjectStore(local_stack.object_store().client, SHORT_WINDOW_S)
        with pytest.raises(ObjectStoreUnavailableError) as refused:
            short.read("reports", "faults/absent.json")
        logs.wait_for(rf"WARNING.*object store at {address} unavailable", 30, "a retry")
    finally:
        start(local_stack, "objectstore")

    flow.completes()

    _finished_like_reference(local_stack, flow, reference)
    assert str(refused.value).startswith(
        f"object store at {address} unavailable after {SHORT_WINDOW_S:g} s: "
    )
    fault_table.record(
        FAULTS[5],
        "the services retried with backoff, logging WARNINGs naming the object "
        "store and its address (the broker, whose log it holds, stalled too); "
        "flow completed; rows and scores identical; a request with a 2 s "
        "window failed naming the object store",
        "none",
    )


def test_mlflow_stopped_for_seconds_is_retried_and_the_flow_completes(
    local_stack: LocalStack,
    flows: FlowFactory,
    reference: RunState,
    fault_table: FaultTable,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stop MLflow while the last round trains; start it a few seconds later."""
    from services.platform.tracking import Tracking

    env = local_stack.client_env()
    address = env["MLFLOW_TRACKING_URI"]
    flow = flows.new("mlflow")
    logs = _with_flow(LogWatch.of(local_stack, *SERVICES), flow)
    flow.start(local_stack)
    logs.wait_for(
        received("TrainModel", flow.correlation_id), 120, "round 2's fit", count=3
    )
    stop(local_stack, "mlflow")
    try:
        # No retries inside MLflow's client either: the window alone decides.
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
        short = Tracking(address, retry_timeout_s=SHORT_WINDOW_S)
        with pytest.raises(ComponentUnavailableError) as refused:
            short.client.search_experiments()
        logs.wait_for(rf"WARNING.*MLflow at {address} unavailable", 30, "a retry")
    finally:
        start(local_stack, "mlflow")

    flow.completes()

    _finished_like_reference(local_stack, flow, reference)
    assert str(refused.value).startswith(
        f"MLflow at {address} unavailable after {SHORT_WINDOW_S:g} s: "
    )
    fault_table.record(
        FAULTS[6],
        "the services retried with backoff, logging WARNINGs naming MLflow and "
        "its address; flow completed; one FINISHED MLflow run per round and "
        "one registered model version; rows and scores identical; a request "
        "with a 2 s window failed naming MLflow",
        "none",
    )


def test_a_flow_fails_naming_a_server_down_for_longer_than_its_retry_window(
    local_stack: LocalStack, flows: FlowFactory, fault_table: FaultTable
) -> None:
    """With a 3 s window, a flow started while a server is down fails naming it."""
    env = local_stack.client_env()
    outages = {
        "broker": ("broker", "KAFKA_RETRY_TIMEOUT_S", env["KAFKA_BOOTSTRAP_SERVERS"]),
        "mlflow": ("MLflow", "MLFLOW_RETRY_TIMEOUT_S", env["MLFLOW_TRACKING_URI"]),
    }
    for process, (component, variable, address) in outages.items():
        flow = flows.new(f"down-{process}")
        stop(local_stack, process)
        try:
            flow.start(
                local_stack,
                env={variable: "3", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"},
            )
            code = flow.wait(timeout_s=120)
        finally:
            start(local_stack, process)
        output = flow.log.read_text(errors="replace")
        assert code != 0, f"the flow completed with the {component} down"
        assert f"{component} at {address} unavailable after 3 s" in output, flow.tail()
        warning = rf"WARNING.*{re.escape(f'{component} at {address}')} unavailable \("
        assert re.search(warning, output), "no WARNING before giving up"
    fault_table.record(
        FAULTS[7],
        "with KAFKA_RETRY_TIMEOUT_S or MLFLOW_RETRY_TIMEOUT_S set to 3, a flow "
        "started while the server was down logged WARNINGs, then failed with "
        "'<component> at <address> unavailable after 3 s: ...' before any round "
        "started",
        "none (nothing had started)",
    )


def _with_flow(logs: LogWatch, flow: Flow) -> LogWatch:
    """Watch the orchestrator's flow output too (it starts empty)."""
    flow.log.touch()
    return LogWatch({**logs.paths, "orchestrator": flow.log})


def _wait_for_text(path: Path, text: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not (path.exists() and text in path.read_text(errors="replace")):
        assert time.monotonic() < deadline, f"{path.name} never logged {text!r}"
        time.sleep(0.1)


# -- malformed messages ------------------------------------------------------------

# Who reads each topic: the services read the commands, every command client
# (here the test's own) reads the events.
READERS = {
    TRAINER_COMMANDS: ("trainer", TrainModel, SelectBatch),
    SAMPLER_COMMANDS: ("sampler", SelectBatch, EvaluateModel),
    EVALUATOR_COMMANDS: ("evaluator", EvaluateModel, TrainModel),
    TRAINER_EVENTS: ("fault-test", ModelTrained, BatchSelected),
    SAMPLER_EVENTS: ("fault-test", BatchSelected, ModelEvaluated),
    EVALUATOR_EVENTS: ("fault-test", ModelEvaluated, ModelTrained),
}
# How long the dead letters are read along before the topic is read again.
READ_AGAIN_S = 15.0
# Breaking one field of a valid message: the field named, and its new value
# (a producer that is not an identifier still carries the test's marker).
BREAKS = {
    "schema_version": None,
    "message_id": "not-a-uuid",
    "correlation_id": 17,
    "producer": "../",
    "produced_at": "yesterday",
    "unexpected": 1,
}


def _drawn(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """Return ``count`` examples of ``strategy``, the same on every run."""
    found: list[Any] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(value: Any) -> None:
        found.append(value)

    collect()
    return found[:count]


def _poison(topic: str, marker: str) -> list[tuple[bytes, str]]:
    """Return malformed records for ``topic``, each with the reason expected."""
    _, belongs, foreign = READERS[topic]
    valid = json.loads(_valid(belongs, marker))
    wrong_version = {**valid, "schema_version": 99}
    records = [
        (b"\xff\x00 not json " + marker.encode(), "not JSON"),
        (json.dumps([marker]).encode(), "a message is a JSON object, not list"),
        (
            json.dumps({"pad": marker + "x" * MAX_MESSAGE_BYTES}).encode(),
            f"exceeds the {MAX_MESSAGE_BYTES}-byte limit",
        ),
        (
            json.dumps(wrong_version).encode(),
            "schema_version 99 is not supported (this code reads version 1)",
        ),
        (
            _valid(foreign, marker),
            f"{foreign.__name__} does not belong on topic {topic}",
        ),
    ]
    breaks = _drawn(
        st.tuples(models(belongs), st.sampled_from(sorted(BREAKS))), count=3
    )
    for message, name in breaks:
        document = json.loads(message.to_bytes())
        document["producer"] = f"fault-{marker}"
        document[name] = f"../{marker}" if name == "producer" else BREAKS[name]
        expected = (
            "schema_version None is not supported"
            if name == "schema_version"
            else f"{belongs.__name__} violates its contract: {name}"
        )
        records.append((json.dumps(document).encode(), expected))
    return records


def _valid(cls: type[Message], marker: str) -> bytes:
    """Return a valid message of ``cls`` whose producer carries ``marker``."""
    message = _drawn(models(cls), count=1)[0]
    document = json.loads(message.to_bytes())
    document["producer"] = f"fault-{marker}"
    return json.dumps(document).encode()


def test_malformed_messages_are_dead_lettered_and_every_reader_keeps_serving(
    local_stack: LocalStack,
    reference: RunState,
    fault_table: FaultTable,
) -> None:
    env = local_stack.client_env()
    servers = [env["KAFKA_BOOTSTRAP_SERVERS"]]
    kafka = KafkaSettings(bootstrap_servers=servers[0])
    marker = uuid.uuid4().hex[:12]
    expected = {topic: _poison(topic, marker) for topic in READERS}
    letters_from = _end_offset(servers, DEAD_LETTER_TOPIC)

    with CommandClient("fault-test", kafka) as client:
        producer = KafkaProducer(
            bootstrap_servers=servers, max_request_size=2 * MAX_MESSAGE_BYTES
        )
        for topic, records in expected.items():
            for payload, _ in records:
                producer.send(kafka.physical(topic), payload).get(timeout=30)
        producer.close()
        total = sum(len(records) for records in expected.values())
        letters = _dead_letters(servers, letters_from, marker, total, timeout_s=90)
        answers = _answered_again(client, local_stack, reference)

    by_topic: dict[str, list[dict[str, Any]]] = {}
    for letter in letters:
        by_topic.setdefault(letter["topic"], []).append(letter)
    for topic, records in expected.items():
        service = READERS[topic][0]
        got = by_topic.get(kafka.physical(topic), [])
        assert len(got) == len(records), f"{topic}: {len(got)} dead letters"
        assert {letter["service"] for letter in got} == {service}
        reasons = sorted(letter["reason"] for letter in got)
        for _, reason in records:
            assert any(reason in text for text in reasons), (
                f"{topic}: no dead letter says {reason!r}; got {reasons}"
            )
    assert [type(a) for a in answers] == [ModelTrained, ModelEvaluated, BatchSelected]
    fault_table.record(
        FAULTS[8],
        "each record (not JSON, not an object, over 256 KiB, schema version "
        "99, a message of another topic, contract violations drawn by "
        "hypothesis) went to platform.deadletter with a reason naming the "
        "fault; every service and the command client answered valid commands "
        "sent afterwards",
        "none (the original bytes are kept in the dead letter)",
    )


def _end_offset(servers: list[str], topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=servers)
    try:
        partition = TopicPartition(topic, 0)
        return int(consumer.end_offsets([partition])[partition])
    finally:
        consumer.close()


def _dead_letters(
    servers: list[str], offset: int, marker: str, count: int, timeout_s: float
) -> list[dict[str, Any]]:
    """Return the dead letters that carry ``marker``, read from ``offset`` on.

    Warning: the local broker can let a consumer reading along miss a record
    that several producers appended to one partition at once, though the
    topic holds it (see the README's local mode); every reader here writes to
    the dead-letter topic at once. So while letters are missing the topic is
    read again from ``offset``, each record counted once, by its offset.
    """
    consumer = KafkaConsumer(bootstrap_servers=servers, enable_auto_commit=False)
    partition = TopicPartition(DEAD_LETTER_TOPIC, 0)
    consumer.assign([partition])
    consumer.seek(partition, offset)
    letters: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    read_again_at = time.monotonic() + READ_AGAIN_S
    try:
        while len(letters) < count:
            assert time.monotonic() < deadline, (
                f"{len(letters)} of {count} dead letters within {timeout_s} s"
            )
            if time.monotonic() > read_again_at:
                consumer.seek(partition, offset)
                read_again_at = time.monotonic() + READ_AGAIN_S
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    letter = json.loads(record.value)
                    if marker in letter["payload"] or marker in _decoded(letter):
                        letters[record.offset] = letter
    finally:
        consumer.close()
    return list(letters.values())


def _decoded(letter: dict[str, Any]) -> str:
    if letter["payload_encoding"] != "base64":
        return ""
    return base64.b64decode(letter["payload"]).decode(errors="replace")


def _commands(stack: LocalStack, reference: RunState) -> list[tuple[uuid.UUID, str]]:
    """Return the reference's round-0 command ids and services, from the ledgers."""
    objects = stack.object_store()
    found: list[tuple[uuid.UUID, str]] = []
    for service in ("trainer", "evaluator", "sampler"):
        listing = objects.client.list_objects_v2(
            Bucket="ledger", Prefix=f"ledger/{service}/"
        )
        for item in listing.get("Contents", []):
            answer = json.loads(objects.read("ledger", item["Key"]))
            if (
                answer["correlation_id"] == str(reference.correlation_id)
                and answer["round"] == 0
            ):
                found.append((uuid.UUID(answer["causation_id"]), service))
                break
    assert [service for _, service in found] == ["trainer", "evaluator", "sampler"]
    return found


def _answered_again(
    client: CommandClient, stack: LocalStack, reference: RunState
) -> list[Any]:
    """Send the reference's round-0 commands again; return the answers.

    The services answer them from their ledgers: this shows each one still
    consumes its topic after the malformed records, without redoing work.
    """
    first = reference.rounds[0]
    common = {
        "correlation_id": reference.correlation_id,
        "producer": "fault-test",
        "round": 0,
        "dataset": reference.dataset,
    }
    build = {
        "trainer": lambda message_id: TrainModel(
            message_id=message_id,
            experiment="active-learning",
            labeled=first.labeled,
            seed=PARAMETERS["seed"],
            **common,
        ),
        "evaluator": lambda message_id: EvaluateModel(
            message_id=message_id,
            experiment="active-learning",
            model=first.model,
            n_labeled=first.n_labeled,
            mlflow_run_id=first.mlflow_run_id,
            **common,
        ),
        "sampler": lambda message_id: SelectBatch(
            message_id=message_id,
            model=first.model,
            labeled=first.labeled,
            strategy=PARAMETERS["strategy"],
            batch_size=first.n_labeled,
            seed=PARAMETERS["seed"],
            **common,
        ),
    }
    commands = [
        build[service](message_id)
        for message_id, service in _commands(stack, reference)
    ]
    return [client.request(command, timeout_s=60) for command in commands]
