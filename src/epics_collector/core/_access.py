"""Who may do what with a device's PVs: an access policy by host and user name.

Operations come in five classes: ``read`` (get and monitor), ``control`` (every
writable PV and RPC of a device: Start, Stop, Clear, Export, Push, Param:* ...),
``feedback`` (enabling writes to other PVs), ``factory`` (Create, Destroy, Restart)
and ``delete`` (Purge: erasing recorded history, which creating devices does not allow).
Each class lists who may do it: ``"*"`` (anyone), an IP address, a network in CIDR
form (``10.1.0.0/16``), a host name (resolved when the policy is loaded), or any of
these as ``user@host`` (the account name PVA reports; ``user@*`` for any host).
``self`` is this host: loopback and every address of its own interfaces (a client on
this host that searched by broadcast connects from one of those).

The default lets anyone read and only this host (``self``) do anything else.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
import time
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
LOCAL = ["127.0.0.0/8", "::1"]


class Operation(StrEnum):
    """A class of operation the policy rules on."""

    READ = "read"
    CONTROL = "control"
    FEEDBACK = "feedback"
    FACTORY = "factory"
    DELETE = "delete"


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The peer's address; an IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) as IPv4."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


_OWN_TTL = 5.0  # seconds this host's addresses are cached (interfaces may change)
_own: tuple[float, frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]] = (
    -_OWN_TTL,
    frozenset(),
)


def own_addresses() -> frozenset[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every address of this host's interfaces, and loopback (Linux: ioctl and /proc)."""
    global _own
    if time.monotonic() - _own[0] < _OWN_TTL:
        return _own[1]
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            with contextlib.suppress(OSError):  # an interface without an IPv4 address
                reply = fcntl.ioctl(sock.fileno(), 0x8915, request)  # SIOCGIFADDR
                if struct.unpack_from("H", reply, 16)[0] == socket.AF_INET:
                    found.add(ipaddress.ip_address(socket.inet_ntoa(reply[20:24])))
    with contextlib.suppress(OSError), open("/proc/net/if_inet6") as table:
        for line in table:
            found.add(ipaddress.IPv6Address(int(line.split()[0], 16)))
    _own = (time.monotonic(), frozenset(found))
    return _own[1]


def is_this_host(host: str) -> bool:
    """Whether a peer address is this host (loopback or one of its own interfaces)."""
    address = host_address(host)
    return address is not None and (address.is_loopback or address in own_addresses())


class _Entry:
    """One entry of a list: who (networks, this host, or any) and which user (or any)."""

    def __init__(self, text: str) -> None:
        user, at, host = text.rpartition("@")
        self.user = user if at else "*"
        self.any_host, self.this_host = host == "*", host == "self"
        self.networks: list[IpNetwork] = []
        if not self.any_host and not self.this_host:
            self.networks = _networks(host)

    def matches(self, host: str, user: str) -> bool:
        if self.user != "*" and self.user != user:
            return False
        if self.any_host:
            return True
        address = host_address(host)
        if address is None:
            return False
        if self.this_host:
            return is_this_host(host)
        return any(address in net for net in self.networks)


def _networks(host: str) -> list[IpNetwork]:
    """The networks a host entry stands for (a name is resolved now)."""
    if host == "localhost":
        return [ipaddress.ip_network(n) for n in LOCAL]
    try:
        network = ipaddress.ip_network(host, strict=False)
    except ValueError:
        pass
    else:
        mapped = getattr(network.network_address, "ipv4_mapped", None)
        return [ipaddress.ip_network(f"{mapped}/{network.prefixlen - 96}")] if mapped else [network]
    try:
        found = socket.getaddrinfo(host, None)
    except OSError as error:
        raise ValueError(f"cannot resolve host {host!r}: {error}") from None
    return [ipaddress.ip_network(str(host_address(str(info[4][0])))) for info in found]


def _check(entries: list[str]) -> list[str]:
    for entry in entries:
        if not entry or any(ord(c) < 32 for c in entry):
            raise ValueError(f"bad access entry {entry!r}")
        _Entry(entry)  # raises with a clear text
    return entries


class AccessPolicy(BaseModel):
    """Who may read, control, enable feedback and use a factory (see the module text)."""

    model_config = ConfigDict(extra="forbid")

    read: list[str] = Field(default_factory=lambda: ["*"], description="get and monitor")
    control: list[str] = Field(
        default_factory=lambda: ["self"], description="writable PVs and RPCs"
    )
    feedback: list[str] = Field(
        default_factory=lambda: ["self"], description="enable writes to other PVs"
    )
    factory: list[str] = Field(
        default_factory=lambda: ["self"], description="Create, Destroy, Restart"
    )
    delete: list[str] = Field(
        default_factory=lambda: ["self"],
        description="Purge recorded history (apart from factory: creating is not erasing)",
    )
    _entries: dict[Operation, list[_Entry]] = PrivateAttr(default_factory=dict)

    @field_validator("read", "control", "feedback", "factory", "delete")
    @classmethod
    def _valid(cls, entries: list[str]) -> list[str]:
        return _check(entries)

    def model_post_init(self, context: Any) -> None:
        self._entries = {op: [_Entry(e) for e in getattr(self, op.value)] for op in Operation}

    def allows(self, operation: Operation, host: str, user: str = "") -> bool:
        """Whether ``user`` at ``host`` may do ``operation``."""
        return any(entry.matches(host, user) for entry in self._entries[operation])


class AccessDeniedError(PermissionError):
    """A request the access policy refuses; the text says who, what and why."""


_MAY_NOT = {
    Operation.READ: "read this device",
    Operation.CONTROL: "control this device",
    Operation.FEEDBACK: "enable feedback on this device",
    Operation.FACTORY: "create, destroy or restart devices on this factory",
    Operation.DELETE: "delete recorded history on this factory",
}


def refusal(operation: Operation, what: str, host: str, user: str) -> AccessDeniedError:
    """The error for a refused request: who, what, and which rule class refused it."""
    address = host_address(host)  # an IPv4-mapped peer is shown as the IPv4 it is
    who = f"{user or '(no user)'}@{(str(address) if address else host) or '(unknown host)'}"
    return AccessDeniedError(
        f"{what} refused: {who} may not {_MAY_NOT[operation]} "
        f"(access.{operation.value} of the policy)"
    )
