"""Why a message was refused at the edge; each error's text says what was wrong."""

from __future__ import annotations


class ContractError(Exception):
    """A message does not follow the contracts; the text names the problem."""


class MessageTooLargeError(ContractError):
    """The message is larger than any valid message can be."""


class MalformedMessageError(ContractError):
    """The bytes are not a JSON object with an envelope."""


class UnsupportedSchemaVersionError(ContractError):
    """The message follows a schema version this code does not read."""


class UnknownMessageTypeError(ContractError):
    """The message type does not exist, or does not belong on this topic."""


class ContractViolationError(ContractError):
    """The fields do not satisfy the message's model."""
