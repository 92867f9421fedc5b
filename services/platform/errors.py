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
