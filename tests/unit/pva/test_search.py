"""The PVA search spoken directly: answers from the network are parsed defensively."""

from __future__ import annotations

import random
import struct

from epics_collector.pva._search import _batches, parse_response, search_message


def _response(guid: bytes, port: int, ids: list[int], found: bool = True) -> bytes:
    body = guid + struct.pack(">i", 7) + bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1])
    body += struct.pack(">H", port) + bytes([3]) + b"tcp" + bytes([found])
    body += struct.pack(">H", len(ids)) + b"".join(struct.pack(">i", i) for i in ids)
    return struct.pack(">BBBBI", 0xCA, 2, 0xC0, 0x04, len(body)) + body


def test_a_search_response_names_its_server_and_ids() -> None:
    parsed = parse_response(_response(b"\x01" * 12, 5075, [3, 9]), "10.0.0.9")
    assert parsed is not None
    responder, ids = parsed
    assert (responder.guid, responder.host, responder.port, ids) == (
        "01" * 12,
        "127.0.0.1",
        5075,
        [3, 9],
    )
    assert parse_response(_response(b"\x01" * 12, 5075, [3], found=False), "x") is None


def test_garbage_and_truncated_packets_are_ignored() -> None:
    good = _response(b"\x02" * 12, 5075, [1, 2, 3])
    rng = random.Random(1)
    for cut in range(len(good)):
        parse_response(good[:cut], "127.0.0.1")  # never raises
    for _ in range(2000):
        noise = bytes(rng.randrange(256) for _ in range(rng.randrange(80)))
        parse_response(b"\xca\x02\x80\x04" + noise, "127.0.0.1")
    assert parse_response(b"not pva at all", "127.0.0.1") is None


def test_long_name_lists_are_split_into_packets_that_fit() -> None:
    names = {n: f"SOME:LONG:PREFIX:{n:05d}:Value" for n in range(1000)}
    batches = _batches(names)
    assert sum(len(b) for b in batches) == 1000 and len(batches) > 1
    assert all(len(search_message(1, b, 5076, True)) < 1500 for b in batches)
