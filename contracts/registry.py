"""Which messages travel on which topic, and decoding bytes into them.

``decode`` is the edge: services receive a validated, frozen message or one
of the :mod:`contracts.errors`, whose text names what was wrong.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from contracts.envelope import SCHEMA_VERSION, Command, Event, FailureEvent, Message
from contracts.errors import (
    ContractViolationError,
    MalformedMessageError,
    MessageTooLargeError,
    UnknownMessageTypeError,
    UnsupportedSchemaVersionError,
)
from contracts.messages import (
    BatchSelected,
    EvaluateModel,
    EvaluationFailed,
    ModelEvaluated,
    ModelTrained,
    SelectBatch,
    SelectionFailed,
    TrainingFailed,
    TrainModel,
)
from contracts.topics import (
    EVALUATOR_COMMANDS,
    EVALUATOR_EVENTS,
    SAMPLER_COMMANDS,
    SAMPLER_EVENTS,
    TRAINER_COMMANDS,
    TRAINER_EVENTS,
)

# Messages carry references, never data: anything near this size is a bug or
# an attack, and is refused before it is parsed.
MAX_MESSAGE_BYTES = 256 * 1024

TOPIC_MESSAGES: dict[str, tuple[type[Message], ...]] = {
    TRAINER_COMMANDS: (TrainModel,),
    TRAINER_EVENTS: (ModelTrained, TrainingFailed),
    SAMPLER_COMMANDS: (SelectBatch,),
    SAMPLER_EVENTS: (BatchSelected, SelectionFailed),
    EVALUATOR_COMMANDS: (EvaluateModel,),
    EVALUATOR_EVENTS: (ModelEvaluated, EvaluationFailed),
}

MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.__name__: cls for classes in TOPIC_MESSAGES.values() for cls in classes
}

TOPIC_OF: dict[type[Message], str] = {
    cls: topic for topic, classes in TOPIC_MESSAGES.items() for cls in classes
}

# For each command: the event that answers it, and the failure event.
REPLIES: dict[type[Command], tuple[type[Event], type[FailureEvent]]] = {
    TrainModel: (ModelTrained, TrainingFailed),
    SelectBatch: (BatchSelected, SelectionFailed),
    EvaluateModel: (ModelEvaluated, EvaluationFailed),
}


def topic_for(message: Message | type[Message]) -> str:
    """Return the topic a message is published on."""
    cls = message if isinstance(message, type) else type(message)
    return TOPIC_OF[cls]


def decode(topic: str, raw: bytes) -> Message:
    """Parse and validate ``raw`` as a message allowed on ``topic``.

    Raises:
        ContractError: one of its subclasses, naming what was wrong.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise MessageTooLargeError(
            f"message of {len(raw)} bytes exceeds the {MAX_MESSAGE_BYTES}-byte limit"
        )
    document = _parse_object(raw)

    version = document.get("schema_version")
    if version != SCHEMA_VERSION:
        raise UnsupportedSchemaVersionError(
            f"schema_version {version!r} is not supported (this code reads "
            f"version {SCHEMA_VERSION})"
        )

    message_type = document.get("message_type")
    cls = MESSAGE_TYPES.get(message_type) if isinstance(message_type, str) else None
    if cls is None:
        raise UnknownMessageTypeError(f"unknown message_type {message_type!r}")
    allowed = TOPIC_MESSAGES.get(topic, ())
    if cls not in allowed:
        names = ", ".join(c.__name__ for c in allowed) or "nothing"
        raise UnknownMessageTypeError(
            f"{message_type} does not belong on topic {topic} (it carries {names})"
        )

    try:
        return cls.model_validate(document)
    except ValidationError as exc:
        raise ContractViolationError(_describe(cls.__name__, exc)) from None


def _parse_object(raw: bytes) -> dict[str, Any]:
    try:
        document = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise MalformedMessageError(f"not JSON: {exc}") from None
    if not isinstance(document, dict):
        raise MalformedMessageError(
            f"a message is a JSON object, not {type(document).__name__}"
        )
    return document


def _describe(message_type: str, exc: ValidationError) -> str:
    problems = [
        f"{'.'.join(str(p) for p in error['loc']) or '(message)'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    ]
    return f"{message_type} violates its contract: " + "; ".join(problems)
