"""The envelope every message carries, and the base class of all messages.

Every message names its schema version, its own id, the id of the flow run it
belongs to (correlation id), the id of the message that caused it (causation
id) and who produced it when. Consumers refuse a schema version they do not
read instead of guessing at its fields.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Final, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SCHEMA_VERSION: Final = 1

Identifier = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
        examples=["trainer", "al-run-2026-12-03"],
    ),
]


class Message(BaseModel):
    """Base of every command and event: the envelope fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ClassVar[Literal["command", "event"]]

    schema_version: Literal[1] = Field(
        default=SCHEMA_VERSION,
        description="Version of the message schemas this message follows.",
    )
    # Each concrete message narrows this to Literal["<ClassName>"]: the
    # discriminator on the wire.
    message_type: str = Field(description="Name of the message class.")
    message_id: uuid.UUID = Field(
        default_factory=uuid.uuid4,
        description="Unique id of this message; handlers deduplicate on it.",
    )
    correlation_id: uuid.UUID = Field(
        description="Id shared by every message of one flow run.",
    )
    causation_id: uuid.UUID | None = Field(
        default=None,
        description="Id of the message this one answers or was caused by.",
    )
    produced_at: AwareDatetime = Field(
        default_factory=lambda: datetime.now(UTC),
        description="When the producer created the message (timezone-aware).",
    )
    producer: Identifier = Field(description="Service or flow that produced it.")

    def reply(self, event_class: type[EventT], **fields: Any) -> EventT:
        """Build an event caused by this message, in the same correlation."""
        return event_class(
            correlation_id=self.correlation_id,
            causation_id=self.message_id,
            **fields,
        )

    def to_bytes(self) -> bytes:
        """Serialise to the JSON bytes that go on the wire."""
        return self.model_dump_json().encode()


class Command(Message):
    """A request for one service to do something (imperative name)."""

    kind: ClassVar[Literal["command", "event"]] = "command"


class Event(Message):
    """A fact a service reports (past-tense name)."""

    kind: ClassVar[Literal["command", "event"]] = "event"


class FailureEvent(Event):
    """The command named by ``causation_id`` could not be carried out."""

    reason: str = Field(
        min_length=1,
        max_length=4000,
        description="What went wrong, for a person to read.",
        examples=["batch of 200 rows asked from a pool of 150 unlabeled rows"],
    )
    error_type: str = Field(
        min_length=1,
        max_length=200,
        description="Class name of the error.",
        examples=["BatchTooLargeError"],
    )
    retryable: bool = Field(
        description="Whether sending the same command again may succeed.",
    )


EventT = TypeVar("EventT", bound=Event)
