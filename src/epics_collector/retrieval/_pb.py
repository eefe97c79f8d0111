"""The Archiver Appliance's PB/HTTP format, encoded with numpy (no protobuf call per sample).

A response is one chunk per calendar year (UTC) of each PV: a ``PayloadInfo`` line
(type, PV name, year, element count, headers such as ``EGU``), then one line per
sample, each a protobuf message of the chunk's type (``EPICSEvent.proto`` of
epicsarchiverap: ``secondsintoyear``, ``nano``, ``val``, ``severity``, ``status``).
Lines are escaped (0x1B -> 1B 01, 0x0A -> 1B 02, 0x0D -> 1B 03) and end with 0x0A;
chunks are separated by an empty line.

Rows of the same width (scalars, waveforms of one length) are laid out as a byte
matrix with a mask of the bytes in use; escaping doubles the matrix's columns. Rows
of strings are encoded one by one.
"""

from __future__ import annotations

import calendar
import time
from collections.abc import Iterator, Mapping
from enum import IntEnum

import numpy as np

from epics_collector.retrieval._samples import Samples

ROWS_PER_BLOCK = 65_536  # rows encoded at once: memory stays O(block), not O(response)
_ESC, _LF, _CR = 0x1B, 0x0A, 0x0D


class PayloadType(IntEnum):
    """``PayloadType`` of EPICSEvent.proto (the same numbers as the appliance's)."""

    SCALAR_STRING = 0
    SCALAR_SHORT = 1
    SCALAR_FLOAT = 2
    SCALAR_ENUM = 3
    SCALAR_BYTE = 4
    SCALAR_INT = 5
    SCALAR_DOUBLE = 6
    WAVEFORM_STRING = 7
    WAVEFORM_SHORT = 8
    WAVEFORM_FLOAT = 9
    WAVEFORM_ENUM = 10
    WAVEFORM_BYTE = 11
    WAVEFORM_INT = 12
    WAVEFORM_DOUBLE = 13


# ---- protobuf pieces -----------------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(number: int, data: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def escape(data: bytes) -> bytes:
    """A message escaped for one line of a PB/HTTP response."""
    return (
        data.replace(b"\x1b", b"\x1b\x01").replace(b"\n", b"\x1b\x02").replace(b"\r", b"\x1b\x03")
    )


def payload_info(
    kind: PayloadType, pv: str, year: int, elements: int, headers: Mapping[str, str]
) -> bytes:
    """The first line of a chunk, escaped, with its newline."""
    message = _field_varint(1, int(kind)) + _field_bytes(2, pv.encode())
    message += _field_varint(3, year) + _field_varint(4, elements)
    for name, value in headers.items():
        header = _field_bytes(1, name.encode()) + _field_bytes(2, str(value).encode())
        message += _field_bytes(15, header)
    return escape(message) + b"\n"


# ---- vectorised rows -----------------------------------------------------------------------

Block = tuple[np.ndarray, np.ndarray]  # (n, width) uint8 bytes, (n, width) bool in use


def _const(n: int, data: bytes) -> Block:
    row = np.frombuffer(data, np.uint8)
    return np.broadcast_to(row, (n, len(row))), np.ones((n, len(row)), bool)


def _varints(values: np.ndarray, width: int = 10) -> Block:
    """Each value as a varint (two's complement for negatives, as protobuf's int32)."""
    x = values.astype(np.int64).view(np.uint64)
    shifts = np.arange(width, dtype=np.uint64) * np.uint64(7)
    groups = (x[:, None] >> shifts) & np.uint64(0x7F)
    length = np.ones(len(x), np.int64)
    for k in range(1, width):
        length += (x >> np.uint64(7 * k)) != 0
    used = np.arange(width) < length[:, None]
    more = np.arange(width) < (length - 1)[:, None]
    data = (groups | (more.astype(np.uint64) << np.uint64(7))).astype(np.uint8)
    return data, used


def _width(values: np.ndarray) -> int:
    """Bytes the longest varint of ``values`` takes (negatives: 10)."""
    if not len(values):
        return 1
    if values.min() < 0:
        return 10
    return max(1, (int(values.max()).bit_length() + 6) // 7)


def _zigzag(values: np.ndarray) -> np.ndarray:
    v = values.astype(np.int64)
    return (v << 1) ^ (v >> 63)


def _fixed(values: np.ndarray, dtype: str) -> Block:
    data = np.ascontiguousarray(values, dtype=dtype).view(np.uint8).reshape(len(values), -1)
    return data, np.ones(data.shape, bool)


def _optional_varint(tag: int, values: np.ndarray) -> Block | None:
    """``tag`` and the varint where the value is not 0 (protobuf's default: left out)."""
    if not values.any():
        return None
    data, used = _varints(values, _width(values))
    present = values != 0
    tags = np.full((len(values), 1), tag, np.uint8)
    return np.hstack([tags, data]), np.hstack([present[:, None], used & present[:, None]])


def _lines(blocks: list[Block]) -> bytes:
    """Rows of ``blocks`` side by side, escaped, one line each."""
    data = np.hstack([b[0] for b in blocks])
    used = np.hstack([b[1] for b in blocks])
    flat = data[used]  # every row's bytes, one row after the other
    ends = np.cumsum(used.sum(axis=1))
    special = np.flatnonzero((flat == _ESC) | (flat == _LF) | (flat == _CR))
    found = flat[special]
    codes = np.where(found == _ESC, 1, np.where(found == _LF, 2, 3)).astype(np.uint8)
    flat[special] = _ESC
    # a code goes right after its escaped byte, a newline after each row (codes first
    # where both fall at one place: np.insert keeps the order of equal positions)
    where = np.concatenate([special + 1, ends])
    what = np.concatenate([codes, np.full(len(ends), _LF, np.uint8)])
    return np.insert(flat, where, what).tobytes()


def _value_block(kind: PayloadType, values: np.ndarray) -> Block:
    n = len(values)
    if kind is PayloadType.SCALAR_DOUBLE:
        return _join(_const(n, b"\x19"), _fixed(values, "<f8"))
    if kind is PayloadType.SCALAR_FLOAT:
        return _join(_const(n, b"\x1d"), _fixed(values, "<f4"))
    if kind is PayloadType.SCALAR_INT:
        return _join(_const(n, b"\x1d"), _fixed(values, "<i4"))
    if kind in (PayloadType.SCALAR_SHORT, PayloadType.SCALAR_ENUM):
        return _join(_const(n, b"\x18"), _varints(_zigzag(values), 5))
    if kind is PayloadType.SCALAR_BYTE:
        return _join(_const(n, b"\x1a\x01"), _fixed(values, "i1"))
    packed = {
        PayloadType.WAVEFORM_DOUBLE: "<f8",
        PayloadType.WAVEFORM_FLOAT: "<f4",
        PayloadType.WAVEFORM_INT: "<i4",
        PayloadType.WAVEFORM_BYTE: "i1",
    }
    if kind in packed:
        payload = _fixed(values.reshape(n, -1), packed[kind])
        head = b"\x1a" + _varint(payload[0].shape[1])
        return _join(_const(n, head), payload)
    if kind in (PayloadType.WAVEFORM_SHORT, PayloadType.WAVEFORM_ENUM):
        flat = values.reshape(n, -1)
        data, used = _varints(_zigzag(flat.reshape(-1)), 5)
        width = flat.shape[1] * 5
        data, used = data.reshape(n, width), used.reshape(n, width)
        size_data, size_used = _varints(used.sum(axis=1), 5)
        return _join(_const(n, b"\x1a"), (size_data, size_used), (data, used))
    raise ValueError(f"{kind.name} rows are encoded one by one")


def _join(*blocks: Block) -> Block:
    return np.hstack([b[0] for b in blocks]), np.hstack([b[1] for b in blocks])


def _string_lines(kind: PayloadType, rows: Samples, into_year: np.ndarray) -> bytes:
    lines = []
    for k in range(len(rows)):
        message = _field_varint(1, int(into_year[k])) + _field_varint(2, int(rows.nanos[k]))
        value = rows.value[k]
        if kind is PayloadType.WAVEFORM_STRING:
            for item in value:
                message += _field_bytes(3, str(item).encode())
        else:
            message += _field_bytes(3, str(value).encode())
        if rows.severity[k]:
            message += _field_varint(4, int(rows.severity[k]))
        if rows.status[k]:
            message += _field_varint(5, int(rows.status[k]))
        lines.append(escape(message))
    return b"\n".join(lines) + b"\n" if lines else b""


def sample_lines(kind: PayloadType, rows: Samples, year_start: int) -> bytes:
    """The escaped sample lines of ``rows`` (all of one year starting at ``year_start``)."""
    into_year = rows.secs - year_start
    if kind in (PayloadType.SCALAR_STRING, PayloadType.WAVEFORM_STRING):
        return _string_lines(kind, rows, into_year)
    if rows.value.dtype == object:  # waveform rows of different lengths: one at a time
        return b"".join(sample_lines(kind, _one_row(rows, k), year_start) for k in range(len(rows)))
    n = len(rows)
    blocks = [
        _join(_const(n, b"\x08"), _varints(into_year, _width(into_year))),
        _join(_const(n, b"\x10"), _varints(rows.nanos, _width(rows.nanos))),
        _value_block(kind, rows.value),
        _optional_varint(0x20, rows.severity),
        _optional_varint(0x28, rows.status),
    ]
    return _lines([block for block in blocks if block is not None])


def _one_row(rows: Samples, k: int) -> Samples:
    value = np.asarray(rows.value[k])[None, :]
    return Samples(
        rows.secs[k : k + 1],
        rows.nanos[k : k + 1],
        value,
        rows.severity[k : k + 1],
        rows.status[k : k + 1],
    )


def year_of(secs: np.ndarray) -> np.ndarray:
    """The UTC calendar year of each POSIX second."""
    return secs.astype("datetime64[s]").astype("datetime64[Y]").astype(np.int64) + 1970


def year_start(year: int) -> int:
    """POSIX seconds of 1 January ``year``, 00:00 UTC."""
    return calendar.timegm((year, 1, 1, 0, 0, 0))


class PbWriter:
    """PB/HTTP of one PV, written page by page: a chunk per year, rows by blocks.

    ``first`` is False for a PV that follows another in the same response (its first
    chunk is then separated by an empty line too).
    """

    def __init__(
        self,
        pv: str,
        kind: PayloadType,
        headers: Mapping[str, str],
        elements: int = 1,
        first: bool = True,
    ) -> None:
        self.pv, self.kind, self.headers, self.elements = pv, kind, dict(headers), elements
        self.first = first
        self.year: int | None = None

    def write(self, part: Samples) -> Iterator[bytes]:
        """The bytes of ``part`` (rows after those written before)."""
        for lo in range(0, len(part), ROWS_PER_BLOCK):
            rows = part.take(slice(lo, lo + ROWS_PER_BLOCK))
            years = year_of(rows.secs)
            cuts = np.r_[0, np.flatnonzero(np.diff(years)) + 1, len(rows)]
            for begin, end in zip(cuts[:-1], cuts[1:], strict=True):
                if begin == end:
                    continue
                year = int(years[begin])
                if year != self.year:
                    yield self._header(year)
                yield sample_lines(self.kind, rows.take(slice(begin, end)), year_start(year))

    def _header(self, year: int) -> bytes:
        separator = b"\n" if self.year is not None or not self.first else b""
        self.year = year
        return separator + payload_info(self.kind, self.pv, year, self.elements, self.headers)

    def finish(self) -> Iterator[bytes]:
        """The end of the PV: with no sample at all, a chunk header that tells its type."""
        if self.year is None:
            yield self._header(time.gmtime().tm_year)


def encode(
    pv: str,
    kind: PayloadType,
    parts: Iterator[Samples],
    headers: Mapping[str, str],
    elements: int = 1,
) -> Iterator[bytes]:
    """PB/HTTP of one PV's ``parts`` (see :class:`PbWriter`)."""
    writer = PbWriter(pv, kind, headers, elements)
    for part in parts:
        yield from writer.write(part)
    yield from writer.finish()
