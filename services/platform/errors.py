"""Errors the shared plumbing raises; each names the component at fault.

Also the bounded retry that turns a server staying unreachable into a
:class:`ComponentUnavailableError`, with a WARNING on every retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_delay,
    wait_exponential,
)

T = TypeVar("T")


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


class ComponentUnavailableError(PlatformError):
    """A server stayed unreachable for the whole retry window.

    The message names the component, its address, the window and the last
    error, e.g. ``object store at http://127.0.0.1:9000 unavailable after
    60 s: ...``.
    """

    def __init__(self, component: str, address: str, waited_s: float, reason: str):
        self.component = component
        self.address = address
        super().__init__(
            f"{component} at {address} unavailable after {waited_s:g} s: {reason}"
        )


def retry_while_unavailable(
    call: Callable[[], T],
    *,
    component: str,
    address: str,
    transient: Callable[[BaseException], bool],
    timeout_s: float,
    logger: logging.Logger,
    error: type[ComponentUnavailableError] = ComponentUnavailableError,
) -> T:
    """Return ``call()``, retried with backoff while ``component`` is unreachable.

    Each retry logs a WARNING naming the component and its address. An error
    ``transient`` does not accept is raised at once, unchanged.

    Raises:
        ComponentUnavailableError: (or the subclass ``error``) the call still
            failed with a transient error after ``timeout_s``.
    """

    def warn(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        pause = state.next_action.sleep if state.next_action else 0.0
        logger.warning(
            "%s at %s unavailable (%s); retrying in %.1f s",
            component,
            address,
            _reason(error),
            pause,
        )

    retrying = Retrying(
        stop=stop_after_delay(timeout_s),
        wait=wait_exponential(multiplier=0.5, max=5),
        retry=retry_if_exception(transient),
        before_sleep=warn,
        reraise=True,
    )
    try:
        return retrying(call)
    except Exception as exc:
        if not transient(exc):
            raise
        raise error(component, address, timeout_s, _reason(exc)) from exc


def _reason(error: BaseException | None) -> str:
    if error is None:
        return "no answer"
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text[:300]}" if text else type(error).__name__
