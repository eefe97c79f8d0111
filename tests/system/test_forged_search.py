"""Forged search answers take nothing (campaign 3, finding 1).

Before: a host that answered only searches for names ending in ``:Claim`` made every
Create fail in 0.32 s, kept a restarted factory from starting (exit 2), and made
``epics-collector run`` exit 2; a payload length of 0xFFFFFFFF was accepted.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from tests.conftest import FactoryHandle

from epics_collector.process import DeviceProcess, FactoryProcess
from epics_collector.pva import Network
from epics_collector.pva._search import Verified, parse_response, servers_of

pytestmark = pytest.mark.system


def _search(packet: bytes) -> tuple[int, list[tuple[int, str]]] | None:
    """A SEARCH message's reply port and (instance id, name) pairs."""
    if len(packet) < 8 or packet[0] != 0xCA or packet[3] != 0x03:
        return None
    body = packet[8:]
    (reply_port,) = struct.unpack(">H", body[24:26])
    offset = 26
    protocols = body[offset]
    offset += 1
    for _ in range(protocols):
        offset += 1 + body[offset]
    (count,) = struct.unpack(">H", body[offset : offset + 2])
    offset += 2
    names = []
    for _ in range(count):
        (instance,) = struct.unpack(">i", body[offset : offset + 4])
        size = body[offset + 4]
        names.append((instance, body[offset + 5 : offset + 5 + size].decode()))
        offset += 5 + size
    return reply_port, names


def _response(ids: list[int], port: int, guid: bytes) -> bytes:
    body = guid + struct.pack(">i", 0) + bytes(16) + struct.pack(">H", port)
    body += bytes([3]) + b"tcp" + bytes([1]) + struct.pack(">H", len(ids))
    body += b"".join(struct.pack(">i", i) for i in ids)
    return struct.pack(">BBBBI", 0xCA, 2, 0x80, 0x04, len(body)) + body


class Forger:
    """A host that answers searches for names it does not serve (``:Claim`` ones, or all).

    With ``fuzz``, each answer is one of: random bytes, a truncated answer, an answer
    whose length fields lie, or a well-formed forged answer.
    """

    def __init__(self, every_name: bool = False, fuzz: bool = False) -> None:
        self.every_name, self.fuzz = every_name, fuzz
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.sent = 0
        self._rng = random.Random(38)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _answers(self, ids: list[int]) -> list[bytes]:
        good = _response(ids, self._rng.randrange(1, 65535), self._rng.randbytes(12))
        if not self.fuzz:
            return [good]
        lying = good[:4] + struct.pack(">I", 0xFFFFFFFF) + good[8:]
        many = good[: -4 * len(ids) - 2] + struct.pack(">H", 60000) + good[-4 * len(ids) :]
        answers = [lying, many, good]  # (one forged server a search: one check, not 100)
        for _ in range(97):
            junk = self._rng.randbytes(self._rng.randrange(0, 200))
            answers.append(junk if self._rng.random() < 0.5 else good[: len(junk) % len(good)])
        return answers

    def _serve(self) -> None:
        while True:
            try:
                packet, (host, _) = self.sock.recvfrom(65536)
            except OSError:
                return
            found = _search(packet)
            if found is None:
                continue
            reply_port, names = found
            ids = [i for i, n in names if self.every_name or n.endswith(":Claim")]
            if ids:
                for answer in self._answers(ids):
                    self.sock.sendto(answer, (host, reply_port))
                    self.sent += 1

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def forged_network(network: Network) -> Iterator[tuple[Network, Forger]]:
    """The run's network, where clients also search a forger's address (it answers all)."""
    forger = Forger(every_name=True)
    variables = dict(network.variables)
    variables["EPICS_PVA_ADDR_LIST"] += f" 127.0.0.1:{forger.port}"
    yield Network(variables=variables, useenv=False), forger
    forger.close()


def test_a_host_answering_only_claims_blocks_neither_create_nor_a_restart_nor_run(
    forged_network: tuple[Network, Forger],
    factory_process: Callable[..., FactoryHandle],
    tmp_path: Any,
) -> None:
    network, forger = forged_network
    process = FactoryProcess(
        "FORGED:FAC:", data_dir=tmp_path / "data", env=network.environ()
    ).start()
    try:
        from p4p.client.thread import Context
        from p4p.nt import NTURI

        with Context("pva", conf=network.client_conf(), useenv=False) as ctx:
            arguments = {"type": "counter", "name": "c1", "config": "{}"}
            uri = NTURI([(k, "s") for k in arguments]).wrap("FORGED:FAC:Create", kws=arguments)
            made = ctx.rpc("FORGED:FAC:Create", uri, timeout=30)
            assert isinstance(made, str) and made + "" == "FORGED:FAC:c1:"
            assert forger.sent > 0  # the forger did answer the claim's searches
        process.stop()
        process = FactoryProcess(  # a restart: its own earlier claims, and the forger's
            "FORGED:FAC:", data_dir=tmp_path / "data", env=network.environ()
        ).start()
    finally:
        process.stop()
    # `run` probes its names before it serves: the forger's answers take nothing
    device = DeviceProcess("counter", "FORGED:RUN:", {}, env=network.environ(), data_dir=tmp_path)
    device.start()  # (raised "... said exit code 2" when the probe believed the forger)
    device.stop()


def test_two_thousand_random_and_truncated_answers_are_never_a_claim(
    forged_network: tuple[Network, Forger],
) -> None:
    _, quiet = forged_network
    quiet.close()
    fuzzer = Forger(every_name=True, fuzz=True)
    try:
        verified = Verified(timeout=0.5)
        names = [f"FUZZ{k}:Claim" for k in range(20)]
        taken: set[Any] = set()
        while fuzzer.sent < 2000:
            found = servers_of(names, [("127.0.0.1", fuzzer.port)], wait=0.2)
            taken |= {r for rs in verified.servers(found).values() for r in rs}
        assert not taken
        assert verified.forged > 0  # the well-formed forgeries were heard, and refused
    finally:
        fuzzer.close()
    rng = random.Random(1)  # and the parser never fails on garbage
    for _ in range(2000):
        packet = bytes([0xCA, 2, rng.choice([0, 0x80]), 0x04]) + rng.randbytes(rng.randrange(0, 80))
        parse_response(packet, "127.0.0.1")
