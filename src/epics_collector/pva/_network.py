"""Where PVA and CA servers bind and clients search: the one place that builds p4p confs."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field

_LOOPBACK = "127.0.0.1"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """An unused port on 127.0.0.1 (UDP by default), chosen by the kernel."""
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind((_LOOPBACK, 0))
        return sock.getsockname()[1]


FIXED_PORTS = (10000, 32767)  # where listening ports are chosen, if below the ephemeral range


def listening_port(kind: int = socket.SOCK_DGRAM) -> int:
    """An unused port for a server that others find by its number (search, CA server).

    Chosen below the kernel's ephemeral range: a port from that range (:func:`free_port`)
    can be handed out again later as the source port of any outgoing connection, and a
    server started after that cannot bind it ("CAS: No TCP server started" in a busy
    test run). Falls back to :func:`free_port` where the range leaves no room.
    """
    low = FIXED_PORTS[0]
    high = min(FIXED_PORTS[1], _ephemeral_low() - 1)
    rng = random.Random()  # (not the global one: tests may seed it)
    for _ in range(200) if high > low else ():
        port = rng.randint(low, high)
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind((_LOOPBACK, port))
            except OSError:
                continue
            return port
    return free_port(kind)


def _ephemeral_low() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as ranges:
            return int(ranges.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


@dataclass(frozen=True)
class Network:
    """EPICS network settings for servers, clients and child processes.

    ``variables`` are ``EPICS_*`` environment variables. ``useenv`` says whether p4p
    may also read the process environment: true in production (the normal EPICS
    environment is honoured), false on loopback so that nothing leaks to the
    machine's real network.
    """

    variables: Mapping[str, str] = field(default_factory=dict)
    useenv: bool = True

    @classmethod
    def from_environment(cls) -> Network:
        """Production: whatever the EPICS environment variables of this process say."""
        return cls({k: v for k, v in os.environ.items() if k.startswith("EPICS_")}, useenv=True)

    @classmethod
    def loopback(cls, search_port: int | None = None, ca_servers: int = 4) -> Network:
        """127.0.0.1 only, one UDP search port shared by every server of this run.

        TCP ports are ephemeral. The CA variables are set too, so that an IOC started
        with :meth:`environ` keeps its Channel Access server on loopback as well. CA
        servers cannot share a port on loopback (a unicast search reaches only one of
        them), so ``ca_servers`` ports are reserved and clients search them all; an IOC
        takes one with :meth:`for_ca_server`.
        """
        port = search_port or listening_port()
        ca_ports = [listening_port(socket.SOCK_STREAM) for _ in range(ca_servers)]
        ca_port, ca_repeater = ca_ports[0], listening_port()
        return cls(
            {
                "EPICS_PVAS_INTF_ADDR_LIST": _LOOPBACK,
                "EPICS_PVAS_BEACON_ADDR_LIST": _LOOPBACK,
                "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
                "EPICS_PVAS_BROADCAST_PORT": str(port),
                "EPICS_PVAS_SERVER_PORT": "0",
                "EPICS_PVA_BROADCAST_PORT": str(port),
                "EPICS_PVA_SERVER_PORT": "0",
                "EPICS_PVA_ADDR_LIST": f"{_LOOPBACK}:{port}",
                "EPICS_PVA_AUTO_ADDR_LIST": "NO",
                "EPICS_CAS_INTF_ADDR_LIST": _LOOPBACK,
                "EPICS_CAS_BEACON_ADDR_LIST": _LOOPBACK,
                "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
                "EPICS_CAS_SERVER_PORT": str(ca_port),
                "EPICS_CA_SERVER_PORT": str(ca_port),
                "EPICS_CA_REPEATER_PORT": str(ca_repeater),
                "EPICS_CA_ADDR_LIST": " ".join(f"{_LOOPBACK}:{p}" for p in ca_ports),
                "EPICS_CA_AUTO_ADDR_LIST": "NO",
            },
            useenv=False,
        )

    @classmethod
    def host(cls, broadcast: str, search_port: int, ca_port: int) -> Network:
        """One host of a private subnet (e.g. a network namespace of a test).

        Servers bind every interface of the host; clients search 127.0.0.1 (where pvxs
        fans a unicast search out to every local server) and the subnet's ``broadcast``
        address (which reaches every server of the other hosts: a unicast to a host's
        address would reach only one of the servers sharing the port there).

        Only for hosts that are network namespaces a test created (their interfaces are
        ``lo`` and one veth): "every interface" never reaches a real network there.
        Listing the two addresses instead of ``0.0.0.0`` was tried and loses the
        broadcast searches from the other namespace (pvxs 1.5).
        """
        return cls(
            {
                "EPICS_PVAS_INTF_ADDR_LIST": "0.0.0.0",
                "EPICS_PVAS_BEACON_ADDR_LIST": broadcast,
                "EPICS_PVAS_AUTO_BEACON_ADDR_LIST": "NO",
                "EPICS_PVAS_BROADCAST_PORT": str(search_port),
                "EPICS_PVAS_SERVER_PORT": "0",
                "EPICS_PVA_BROADCAST_PORT": str(search_port),
                "EPICS_PVA_SERVER_PORT": "0",
                "EPICS_PVA_ADDR_LIST": f"{_LOOPBACK}:{search_port} {broadcast}:{search_port}",
                "EPICS_PVA_AUTO_ADDR_LIST": "NO",
                "EPICS_CAS_INTF_ADDR_LIST": "0.0.0.0",
                "EPICS_CAS_BEACON_ADDR_LIST": broadcast,
                "EPICS_CAS_AUTO_BEACON_ADDR_LIST": "NO",
                "EPICS_CAS_SERVER_PORT": str(ca_port),
                "EPICS_CA_SERVER_PORT": str(ca_port),
                "EPICS_CA_ADDR_LIST": f"{_LOOPBACK}:{ca_port} {broadcast}:{ca_port}",
                "EPICS_CA_AUTO_ADDR_LIST": "NO",
            },
            useenv=False,
        )

    def for_ca_server(self, index: int) -> Network:
        """This network, with a CA server port of its own for the ``index``-th IOC."""
        ports = self.variables["EPICS_CA_ADDR_LIST"].split()
        port = ports[index].rpartition(":")[2]
        variables = {**self.variables, "EPICS_CAS_SERVER_PORT": port}
        return Network(variables, useenv=self.useenv)

    @property
    def search_port(self) -> int | None:
        """The UDP port servers answer searches on, when pinned."""
        port = self.variables.get("EPICS_PVAS_BROADCAST_PORT")
        return int(port) if port else None

    def server_conf(self) -> dict[str, str]:
        """Keyword ``conf`` for :class:`p4p.server.Server` (with ``useenv=self.useenv``)."""
        return {k: v for k, v in self.variables.items() if k.startswith("EPICS_PVAS_")}

    def client_conf(self) -> dict[str, str]:
        """Keyword ``conf`` for :class:`p4p.client.thread.Context` (with ``useenv``)."""
        return {k: v for k, v in self.variables.items() if k.startswith("EPICS_PVA_")}

    def environ(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """Environment for a child process: ``base`` (default ``os.environ``) plus ours.

        On loopback every inherited ``EPICS_*`` variable is dropped first so that the
        child sees exactly this network.
        """
        env = dict(os.environ if base is None else base)
        if not self.useenv:
            env = {k: v for k, v in env.items() if not k.startswith("EPICS_")}
        env.update(self.variables)
        return env
