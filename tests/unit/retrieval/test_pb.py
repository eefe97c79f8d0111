"""PB/HTTP encoding, decoded by aapy (the Archiver Appliance's own Python client)."""

from __future__ import annotations

import calendar

import numpy as np
from tests.clients.run import aapy_decode

from epics_collector.retrieval._pb import PayloadType, encode
from epics_collector.retrieval._samples import Samples

NEW_YEAR = calendar.timegm((2026, 1, 1, 0, 0, 0))


def _samples(secs: list[int], nanos: list[int], value: np.ndarray, sev: int = 0) -> Samples:
    n = len(secs)
    return Samples(
        np.array(secs, np.int64),
        np.array(nanos, np.int32),
        value,
        np.full(n, sev, np.int32),
        np.arange(n, dtype=np.int32) % 3,
    )


def _decode(pv: str, kind: PayloadType, rows: Samples, **headers: str) -> list[dict]:
    return aapy_decode(b"".join(encode(pv, kind, iter([rows]), headers)))


def test_doubles_across_a_year_boundary_come_back_exactly_in_two_chunks() -> None:
    secs = [NEW_YEAR - 2, NEW_YEAR - 1, NEW_YEAR, NEW_YEAR + 3600]
    nanos = [1, 999_999_999, 0, 123_456_789]
    # values whose bytes hold 0x0A, 0x0D and 0x1B: escaping is exercised
    values = np.array([np.frombuffer(b"\n\r\x1b\n\r\x1b\n\r", "<f8")[0], -1.5, 1e300, 0.0])
    chunks = _decode("LAB:X", PayloadType.SCALAR_DOUBLE, _samples(secs, nanos, values, 2), EGU="mm")
    assert [c["year"] for c in chunks] == [2025, 2026]
    assert all(c["pvname"] == "LAB:X" and c["type"] == 6 for c in chunks)
    assert chunks[0]["headers"] == {"EGU": "mm"}
    events = chunks[0]["events"] + chunks[1]["events"]
    starts = [calendar.timegm((c["year"], 1, 1, 0, 0, 0)) for c in chunks]
    got_secs = [starts[0] + e["secondsintoyear"] for e in chunks[0]["events"]]
    got_secs += [starts[1] + e["secondsintoyear"] for e in chunks[1]["events"]]
    assert got_secs == secs and [e["nano"] for e in events] == nanos
    assert [e["val"] for e in events] == list(values)
    assert [e["severity"] for e in events] == [2] * 4
    assert [e["status"] for e in events] == [0, 1, 2, 0]


def test_every_scalar_and_waveform_type_decodes() -> None:
    secs, nanos = [NEW_YEAR + 10, NEW_YEAR + 11, NEW_YEAR + 12], [5, 10, 15]
    cases = [
        (PayloadType.SCALAR_FLOAT, np.array([1.5, -2.25, 10.0], np.float32)),
        (PayloadType.SCALAR_INT, np.array([-(2**31), 10, 2**31 - 1])),
        (PayloadType.SCALAR_SHORT, np.array([-32768, 13, 32767])),
        (PayloadType.SCALAR_ENUM, np.array([0, 1, 10])),
        (PayloadType.SCALAR_STRING, np.array(["a\nb", "", "ümlaut \x1b"], dtype=object)),
        (PayloadType.WAVEFORM_DOUBLE, np.array([[1.0, 2.0], [3.0, 10.0], [0.0, -1.0]])),
        (PayloadType.WAVEFORM_INT, np.array([[1, -2], [3, 10], [0, 13]])),
        (PayloadType.WAVEFORM_SHORT, np.array([[1, -2], [3, 10], [0, -300]])),
        (PayloadType.WAVEFORM_FLOAT, np.array([[1, -2], [3, 10], [0, 13]], np.float32)),
    ]
    for kind, values in cases:
        (chunk,) = _decode("PV", kind, _samples(secs, nanos, values))
        assert chunk["type"] == int(kind), kind
        got = [e["val"] for e in chunk["events"]]
        expected = values.tolist()
        assert got == expected, (kind, got, expected)
        assert [e["nano"] for e in chunk["events"]] == nanos


def test_enum_labels_travel_in_the_headers() -> None:
    rows = _samples([NEW_YEAR + 1], [0], np.array([1]))
    (chunk,) = _decode("PV", PayloadType.SCALAR_ENUM, rows, ENUM_0="Off", ENUM_1="On")
    assert chunk["enum"] == {"0": "Off", "1": "On"}


def test_a_pv_without_samples_still_says_its_type() -> None:
    (chunk,) = _decode("PV", PayloadType.SCALAR_DOUBLE, Samples.empty())
    assert chunk["type"] == 6 and chunk["events"] == []
