"""Errors the shared plumbing raises; each names the component at fault."""

from __future__ import annotations


class PlatformError(Exception):
    """Base class of every error the platform raises on purpose."""


class ConfigurationError(PlatformError):
    """Settings are missing or invalid; the message names the variables."""


class DependencyUnavailableError(PlatformError):
    """A server the service depends on did not answer in time."""

    def __init__(self, component: str, address: str, waited_s: float, reason: str):
        self.component = component
        self.address = address
        super().__init__(
            f"{component} at {address} did not answer within {waited_s:.0f} s: {reason}"
        )


class CommandRefusedError(PlatformError):
    """A handler refuses a valid command it can never carry out (no retry).

    The worker answers with the command's failure event, marked not
    retryable, and the message names what was wrong (for example the counts
    of an oversized batch).
    """


class InfrastructureError(PlatformError):
    """The broker or the ledger failed beyond the retry budget.

    The worker stops without committing the command in hand, so it is
    delivered again once the service restarts.
    """
