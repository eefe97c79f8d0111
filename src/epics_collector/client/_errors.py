"""Typed errors of the client: what went wrong, in the device's own words."""

from __future__ import annotations

from epics_collector.pva import is_denial


class ClientError(Exception):
    """Base of every error the client raises."""


class DeviceError(ClientError):
    """A device refused a request; ``message`` is its Message PV at that moment."""

    def __init__(self, text: str, message: str = "") -> None:
        super().__init__(text)
        self.message = message


class AccessDeniedError(DeviceError):
    """The request was refused by an access rule: a gateway's ACF or the device's policy."""


def refused(name: str, text: str) -> DeviceError:
    """The client error for a server's refusal of ``name``: access refusals are typed."""
    if is_denial(text):
        return AccessDeniedError(f"{name}: access denied: {text}")
    return DeviceError(f"{name}: {text}")


class NoConnectionError(ClientError, TimeoutError):
    """No server answered for a PV in time (wrong prefix, device not running, network)."""


class EmptyExportWarning(UserWarning):
    """An export wrote a file with no rows: nothing was recorded (see the Message)."""
