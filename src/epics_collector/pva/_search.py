"""PVAccess name search spoken directly, to hear *every* server that has a name.

p4p's client connects to the first server that answers a search and never tells of a
second one. To know whether a name is served twice (two factories claiming one
prefix), :func:`servers_of` sends PVA SEARCH messages itself (protocol version 2, as
pvxs does) to the addresses a client would search (``EPICS_PVA_ADDR_LIST``, plus the
interfaces' broadcast addresses when ``EPICS_PVA_AUTO_ADDR_LIST`` is not ``NO``) and
collects each SEARCH_RESPONSE with its server GUID until the wait ends. A search
answer is one UDP datagram that any host can forge, so what decides is whether the
answering server serves the name over TCP (:func:`serves`): forged answers are
ignored, counted and logged once per sender.

``EPICS_PVA_NAME_SERVERS`` (search over TCP) is not spoken here: a server found only
that way is not heard.
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from p4p.client.thread import Context, RemoteError

from epics_collector.pva._network import Network

log = logging.getLogger(__name__)

_MAGIC, _VERSION = 0xCA, 2
_SEARCH, _SEARCH_RESPONSE = 0x03, 0x04
_BIG_ENDIAN = 0x80  # header flag: the payload is big endian
_UNICAST = 0x80  # search flag: sent to one address (pvxs forwards it to its peers)
_DEFAULT_PORT = 5076
_SIOCGIFBRDADDR = 0x8919
_MAX_PAYLOAD = 1200  # bytes of names per message: one unfragmented packet on Ethernet
_MAX_RESPONSE = 65_000  # bytes of a SEARCH_RESPONSE payload at most (one datagram)
VERIFY_TIMEOUT = 2.0  # seconds an answering server has to serve the name over TCP
MAX_CHECKED = 64  # answering servers checked per search, at most


@dataclass(frozen=True)
class Responder:
    """A server that answered a search: its GUID (hex) and its TCP address."""

    guid: str
    host: str
    port: int


def _size(n: int) -> bytes:
    return bytes([n]) if n < 254 else b"\xfe" + struct.pack(">i", n)


def _string(text: str) -> bytes:
    data = text.encode()
    return _size(len(data)) + data


def search_message(
    sequence: int, names: Mapping[int, str], reply_port: int, unicast: bool
) -> bytes:
    """A SEARCH message for ``names`` (by search instance id).

    The answer goes to ``reply_port`` at the address the packet came from (a reply
    address of zeros means "the sender's").
    """
    body = struct.pack(">iB3x", sequence, _UNICAST if unicast else 0)
    body += bytes(16) + struct.pack(">H", reply_port)
    body += _size(1) + _string("tcp")
    body += struct.pack(">H", len(names))
    for instance, name in names.items():
        body += struct.pack(">i", instance) + _string(name)
    header = struct.pack(">BBBBI", _MAGIC, _VERSION, _BIG_ENDIAN, _SEARCH, len(body))
    return header + body


def parse_response(packet: bytes, sender: str) -> tuple[Responder, list[int]] | None:
    """A SEARCH_RESPONSE's server and the instance ids it has; None for anything else.

    Every length field is checked against the bytes that came: a payload length past
    the datagram, or a count of ids past the payload, makes the packet garbage.
    """
    if len(packet) < 8 or packet[0] != _MAGIC or packet[3] != _SEARCH_RESPONSE:
        return None
    order = ">" if packet[2] & _BIG_ENDIAN else "<"
    (length,) = struct.unpack(order + "I", packet[4:8])
    if length > len(packet) - 8 or length > _MAX_RESPONSE:
        return None
    body = packet[8 : 8 + length]
    try:
        guid = body[:12].hex()
        address = body[16:32]
        (port,) = struct.unpack(order + "H", body[32:34])
        offset = 34
        length = body[offset]
        offset += 1 + length  # the protocol ("tcp")
        found = body[offset]
        (count,) = struct.unpack(order + "H", body[offset + 1 : offset + 3])
        if offset + 3 + 4 * count > len(body):
            return None
        ids = list(struct.unpack(order + f"{count}i", body[offset + 3 : offset + 3 + 4 * count]))
    except (IndexError, struct.error):
        return None
    if not found:
        return None
    host = sender
    if address[:12] == bytes(10) + b"\xff\xff" and address[12:] != bytes(4):
        host = socket.inet_ntoa(address[12:])
    return Responder(guid, host, port), ids


def _broadcast_addresses() -> list[str]:
    """Each IPv4 interface's broadcast address (Linux), as pvxs's auto address list."""
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(sock.fileno(), _SIOCGIFBRDADDR, request)
            except OSError:
                continue
            address = socket.inet_ntoa(answer[20:24])
            if address != "0.0.0.0" and address not in found:
                found.append(address)
    return found


def search_addresses(variables: Mapping[str, str], useenv: bool) -> list[tuple[str, int]]:
    """Where a PVA client with these settings searches: (address, port) pairs."""
    settings = dict(os.environ if useenv else {})
    settings = {k: v for k, v in settings.items() if k.startswith("EPICS_PVA_")}
    settings.update(variables)
    default_port = int(settings.get("EPICS_PVA_BROADCAST_PORT") or _DEFAULT_PORT)
    targets: list[tuple[str, int]] = []
    for entry in settings.get("EPICS_PVA_ADDR_LIST", "").split():
        host, _, port = entry.partition(":")
        try:
            targets.append((socket.gethostbyname(host), int(port) if port else default_port))
        except (OSError, ValueError):
            continue
    if settings.get("EPICS_PVA_AUTO_ADDR_LIST", "YES").upper() != "NO":
        targets += [(address, default_port) for address in _broadcast_addresses()]
    return list(dict.fromkeys(targets))


def _is_unicast(address: str) -> bool:
    return not address.endswith(".255") and not address.startswith(("224.", "239."))


def _batches(by_id: Mapping[int, str]) -> list[dict[int, str]]:
    """The names split into messages of at most about :data:`_MAX_PAYLOAD` bytes."""
    batches: list[dict[int, str]] = [{}]
    size = 0
    for instance, name in by_id.items():
        length = 8 + len(name.encode())
        if batches[-1] and size + length > _MAX_PAYLOAD:
            batches.append({})
            size = 0
        batches[-1][instance] = name
        size += length
    return batches


def servers_of(
    names: Iterable[str],
    targets: Iterable[tuple[str, int]],
    wait: float = 0.5,
    resends: int = 2,
) -> dict[str, set[Responder]]:
    """Every server that answers for each of ``names`` within ``wait`` seconds.

    The search is sent ``resends + 1`` times over the wait (UDP may drop a packet);
    answers are collected until the wait ends, whoever answered first.
    """
    by_id = {random.randrange(1, 2**31): name for name in dict.fromkeys(names)}
    found: dict[str, set[Responder]] = {name: set() for name in by_id.values()}
    targets = list(targets)
    batches = _batches(by_id)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        loopback = all(host.startswith("127.") for host, _ in targets)
        sock.bind(("127.0.0.1" if loopback else "0.0.0.0", 0))
        reply_port = sock.getsockname()[1]
        start = time.monotonic()
        sends = [start + wait * n / (resends + 1) for n in range(resends + 1)]
        while True:
            now = time.monotonic()
            while sends and sends[0] <= now:
                sends.pop(0)
                for host, port in targets:
                    for batch in batches:
                        message = search_message(
                            random.randrange(2**31), batch, reply_port, _is_unicast(host)
                        )
                        try:
                            sock.sendto(message, (host, port))
                        except OSError:
                            continue  # an unreachable address: the others may answer
            left = start + wait - now
            if left <= 0:
                return found
            timeout = min(left, (sends[0] - now) if sends else left)
            ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
            if not ready:
                continue
            packet, (sender, _) = sock.recvfrom(65536)
            parsed = parse_response(packet, sender)
            if parsed is None:
                continue
            responder, ids = parsed
            for instance in ids:
                if instance in by_id:
                    found[by_id[instance]].add(responder)


def serves(responder: Responder, name: str, timeout: float = VERIFY_TIMEOUT) -> bool:
    """Whether ``responder`` really serves ``name``: a get over a TCP connection to it.

    A search answer is one UDP datagram, which any host can forge (naming any GUID);
    serving the name over TCP from the address it gave is what a real server does.
    """
    conf = {
        "EPICS_PVA_NAME_SERVERS": f"{responder.host}:{responder.port}",
        "EPICS_PVA_ADDR_LIST": "",
        "EPICS_PVA_AUTO_ADDR_LIST": "NO",
    }
    try:
        with Context("pva", conf=conf, useenv=False) as context:
            context.get(name, timeout=timeout)
    except RemoteError:  # the channel exists there (an RPC-only name refuses a get)
        return True
    except Exception:  # no connection, no such name, a timeout: not served there
        return False
    return True


class Verified:
    """Search answers checked over TCP; forged ones are counted and logged once a sender.

    Each answering server is checked once per search, with the first name it answered
    (a real server serves them all), in parallel and at most :data:`MAX_CHECKED` of them:
    a flood of forged answers costs one timeout, not one per answer.
    """

    def __init__(self, timeout: float = VERIFY_TIMEOUT) -> None:
        self.timeout = timeout  # seconds an answering server has to serve the name
        self.forged = 0
        self._told: set[str] = set()
        self._lock = threading.Lock()

    def servers(self, found: Mapping[str, set[Responder]]) -> dict[str, set[Responder]]:
        """Of each name's answering servers, those that serve it over TCP."""
        first: dict[Responder, str] = {}
        for name, responders in found.items():
            for responder in responders:
                first.setdefault(responder, name)
        checked = list(first.items())[:MAX_CHECKED]
        if len(first) > MAX_CHECKED:
            log.warning("%d servers answered one search: only %d checked", len(first), MAX_CHECKED)
        with ThreadPoolExecutor(max(1, min(16, len(checked)))) as pool:
            verdicts = dict(
                zip(
                    [r for r, _ in checked],
                    pool.map(lambda item: serves(*item, timeout=self.timeout), checked),
                    strict=True,
                )
            )
        for responder, real in verdicts.items():
            if not real:
                self._forged(responder, first[responder])
        return {
            name: {r for r in responders if verdicts.get(r, False)}
            for name, responders in found.items()
        }

    def _forged(self, responder: Responder, name: str) -> None:
        with self._lock:
            self.forged += 1
            told = responder.host in self._told
            self._told.add(responder.host)
        if not told:
            log.warning(
                "%s:%d answered a search for %s but does not serve it: ignored (a forged "
                "or stale answer; said once per sender)",
                responder.host,
                responder.port,
                name,
            )


#: The answers this process has found forged (one count for all its searches).
VERIFIED = Verified()


def servers_by_guid(network: Network, names: list[str], wait: float) -> dict[str, set[str]]:
    """The GUIDs of every server that serves each of ``names`` on ``network`` (blocking).

    Answers to the search are checked over TCP (:func:`serves`): a host that only
    answers searches takes nothing.
    """
    targets = search_addresses(network.variables, network.useenv)
    found = VERIFIED.servers(servers_of(names, targets, wait=wait))
    return {name: {server.guid for server in servers} for name, servers in found.items()}


def answered(network: Network, names: list[str], wait: float = 0.5) -> list[str]:
    """Those of ``names`` that some server on ``network`` answers now (blocking ``wait``)."""
    found = servers_by_guid(network, names, wait)
    return [name for name in names if found.get(name)]
