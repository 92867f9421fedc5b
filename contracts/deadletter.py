"""What the dead-letter topic carries: the refused record and why.

A dead letter keeps the original bytes (as text when they decode as UTF-8,
else base64), so nothing is lost and the record can be replayed once the
cause is fixed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.envelope import SCHEMA_VERSION


class DeadLetter(BaseModel):
    """A record a service could not handle, with the reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    reason: str = Field(min_length=1, description="Why the record was refused.")
    error_type: str = Field(description="Class name of the error.")
    service: str = Field(description="Service that refused it.")
    topic: str = Field(description="Topic the record was read from.")
    partition: int = Field(ge=0)
    offset: int = Field(ge=0)
    attempts: int = Field(ge=0, description="Handler attempts made before giving up.")
    message_id: str | None = Field(
        default=None, description="The record's message id, if it could be read."
    )
    payload: str = Field(description="The record's bytes, as text or base64.")
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    dead_lettered_at: AwareDatetime = Field(default_factory=lambda: datetime.now(UTC))
