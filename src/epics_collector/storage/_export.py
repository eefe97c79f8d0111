"""Writing recorded data to files: NeXus HDF5 and CSV.

Both writers take :class:`ExportData` and write in chunks. A channel's rows may be
given as a reader, called by the writer (in its thread) when it reaches the channel:
then one channel's copy is held at a time, not every channel's at once. Files appear
atomically (written under a temporary name, then renamed). A writer returns the rows
it wrote.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from epics_collector.storage._paths import new_file
from epics_collector.storage._ring import Columns

CHUNK_ROWS = 1 << 16
SEVERITY_TEXT = "EPICS alarm severity: 0 none, 1 minor, 2 major, 3 invalid"
STATUS_TEXT = "PVA alarm status (7 = client: a gap while disconnected)"


@dataclass
class ChannelData:
    """One channel's rows (or a reader of them) and what describes them.

    ``span`` (first and last time) lets a writer put the entry's times before it reads
    any rows; without it the rows are read for it.
    """

    alias: str
    pv: str
    kind: str
    rows: Columns | Callable[[], Columns]
    units: str = ""
    span: tuple[float, float] | None = None

    def load(self) -> Columns:
        """The rows (read now, if given as a reader)."""
        return self.rows() if callable(self.rows) else self.rows

    def times(self) -> tuple[float, float] | None:
        """The first and last row's time, or None without rows."""
        if self.span is not None or callable(self.rows):
            return self.span
        return (float(self.rows.time[0]), float(self.rows.time[-1])) if len(self.rows) else None


@dataclass
class SnapshotData:
    """One trigger window."""

    id: int
    trigger_time: float
    start: float
    end: float
    complete: bool
    channels: list[ChannelData]


@dataclass
class ExportData:
    """Everything an export writes."""

    device: str
    config_json: str
    channels: list[ChannelData]
    snapshots: list[SnapshotData] = field(default_factory=list)
    annotations: list[tuple[float, str]] = field(default_factory=list)


def iso(seconds: float) -> str:
    """ISO 8601 in UTC, as NeXus wants time stamps."""
    return datetime.fromtimestamp(seconds, UTC).isoformat()


def _chunks(n: int) -> Iterator[slice]:
    for start in range(0, n, CHUNK_ROWS):
        yield slice(start, min(n, start + CHUNK_ROWS))


def write_nexus(path: Path, data: ExportData, root: Path | None = None) -> int:
    """Write a NeXus file with one ``NXentry`` (layout in docs/how-to/export.md).

    Written through a new partial file, following no symlink below ``root``. The writer
    is :mod:`~epics_collector.storage._nexus`, imported on the first export: h5py costs
    every process that imports it about 12 MB resident, and most never export.
    """
    from epics_collector.storage import _nexus  # noqa: PLC0415 (see above)

    return _nexus.write_nexus(path, data, root)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet takes for a formula


def cell(text: object) -> object:
    """A text cell a spreadsheet shows as text: a leading ``'`` before a formula start.

    Numbers are left alone (``-5.0`` stays a number); strings that a spreadsheet would
    evaluate (``=cmd|' /C calc'!A0``) get the quote OWASP recommends.
    """
    if isinstance(text, str) and text.startswith(FORMULA_STARTS):
        return "'" + text
    return text


def write_csv(path: Path, data: ExportData, root: Path | None = None) -> int:
    """One long table: ``channel, time, time_iso, value, severity, status``; then notes.

    Waveform and image channels are not written (CSV has no arrays): use NeXus. Text
    cells that a spreadsheet would take for a formula are escaped (see :func:`cell`).
    """
    arrays = [
        c.alias
        for c in data.channels
        if c.kind in ("waveform", "image") or (not callable(c.rows) and c.rows.value.ndim > 1)
    ]
    if arrays:
        raise ValueError(f"CSV cannot hold arrays ({', '.join(arrays)}): export as nexus")
    with new_file(path, root) as handle, open(handle, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["channel", "time", "time_iso", "value", "severity", "status"])
        written = 0
        for channel in data.channels:
            rows = channel.load()
            written += len(rows)
            for part in _chunks(len(rows)):
                for t, v, s, a in zip(
                    rows.time[part],
                    rows.value[part],
                    rows.severity[part],
                    rows.status[part],
                    strict=True,
                ):
                    row = [channel.alias, repr(float(t)), iso(t), cell(v), int(s), int(a)]
                    writer.writerow(row)
            del rows  # one channel's copy at a time
        for t, text in data.annotations:
            writer.writerow(["annotation", repr(t), iso(t), cell(text), 0, 0])
    return written
