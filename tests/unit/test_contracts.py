"""Contracts: every message round-trips through JSON; bad bytes are named."""

from __future__ import annotations

import json
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import (
    MESSAGE_TYPES,
    TOPIC_MESSAGES,
    TOPICS,
    DatasetRef,
    ObjectRef,
    TrainModel,
    decode,
    topic_for,
)
from contracts.deadletter import DeadLetter
from contracts.errors import (
    ContractViolationError,
    MalformedMessageError,
    MessageTooLargeError,
    UnknownMessageTypeError,
    UnsupportedSchemaVersionError,
)
from contracts.registry import MAX_MESSAGE_BYTES
from contracts.schema import SCHEMA_DIR, asyncapi_document, drift
from tests.contract_strategies import models

ALL_MESSAGES = sorted(MESSAGE_TYPES.values(), key=lambda c: c.__name__)


def _train_model() -> TrainModel:
    ref = ObjectRef(
        uri="s3://datasets/digits/labeled.json", sha256="a" * 64, size_bytes=9
    )
    return TrainModel(
        correlation_id=uuid.uuid4(),
        producer="orchestrator",
        experiment="digits-al",
        round=0,
        dataset=DatasetRef(dataset_id="digits-abc123", manifest=ref),
        labeled=ref,
        seed=42,
    )


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda c: c.__name__)
@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(data=st.data())
def test_every_message_round_trips_through_its_json_form(cls, data) -> None:
    message = data.draw(models(cls))

    decoded = decode(topic_for(cls), message.to_bytes())

    assert decoded == message
    assert type(decoded) is cls


@settings(max_examples=40, deadline=None)
@given(letter=models(DeadLetter))
def test_dead_letters_round_trip_through_json(letter: DeadLetter) -> None:
    assert DeadLetter.model_validate_json(letter.model_dump_json()) == letter


@settings(max_examples=200, deadline=None)
@given(raw=st.binary(max_size=2000))
def test_decode_refuses_arbitrary_bytes_with_a_contract_error(raw: bytes) -> None:
    from contracts.errors import ContractError

    try:
        decode("trainer.commands", raw)
    except ContractError as exc:
        assert str(exc)
    else:  # only a valid TrainModel may pass, which random bytes never are
        pytest.fail(f"accepted {raw!r}")


def test_messages_are_frozen() -> None:
    message = _train_model()

    with pytest.raises(ValueError, match="frozen"):
        message.seed = 7  # type: ignore[misc]


def test_unknown_schema_version_is_refused_naming_both_versions() -> None:
    document = json.loads(_train_model().to_bytes())
    document["schema_version"] = 99

    with pytest.raises(UnsupportedSchemaVersionError, match="schema_version 99 is not"):
        decode("trainer.commands", json.dumps(document).encode())


def test_message_on_the_wrong_topic_is_refused_naming_what_belongs_there() -> None:
    with pytest.raises(
        UnknownMessageTypeError,
        match=r"TrainModel does not belong on topic sampler.commands .*SelectBatch",
    ):
        decode("sampler.commands", _train_model().to_bytes())


def test_contract_violation_names_the_field() -> None:
    document = json.loads(_train_model().to_bytes())
    document["seed"] = -1

    with pytest.raises(
        ContractViolationError, match="TrainModel violates its contract: seed"
    ):
        decode("trainer.commands", json.dumps(document).encode())


def test_unknown_fields_are_refused() -> None:
    document = json.loads(_train_model().to_bytes())
    document["labels"] = [1, 2, 3]

    with pytest.raises(ContractViolationError, match="labels: Extra inputs"):
        decode("trainer.commands", json.dumps(document).encode())


def test_oversized_message_is_refused_before_parsing() -> None:
    with pytest.raises(MessageTooLargeError, match=f"{MAX_MESSAGE_BYTES}-byte limit"):
        decode("trainer.commands", b" " * (MAX_MESSAGE_BYTES + 1))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(b"\xff\xfe", "not JSON"), (b"[1, 2]", "not list"), (b'"text"', "not str")],
)
def test_malformed_bytes_are_refused_saying_why(raw: bytes, expected: str) -> None:
    with pytest.raises(MalformedMessageError, match=expected):
        decode("trainer.commands", raw)


def test_object_refs_cannot_name_a_path_outside_their_bucket() -> None:
    with pytest.raises(ValueError, match="uri"):
        ObjectRef(uri="s3://models/../secrets", sha256="a" * 64, size_bytes=1)
    with pytest.raises(ValueError, match="uri"):
        ObjectRef(uri="file:///etc/passwd", sha256="a" * 64, size_bytes=1)


def test_every_topic_with_messages_is_declared() -> None:
    declared = {t.name for t in TOPICS}

    assert set(TOPIC_MESSAGES) <= declared


def test_committed_schemas_match_the_code() -> None:
    assert drift() == [], "run `make contracts` and commit contracts/schemas"
    assert (SCHEMA_DIR / "asyncapi.json").is_file()


def test_asyncapi_document_has_a_channel_per_topic_and_every_message() -> None:
    document = asyncapi_document()
    addresses = {c["address"] for c in document["channels"].values()}

    assert addresses == {t.name for t in TOPICS}
    assert set(MESSAGE_TYPES) <= set(document["components"]["messages"])
