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
from typing import Any

import h5py
import numpy as np

from epics_collector.storage._hdf5 import new_dataset, new_group, set_text, write_rows
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


def _write_log(group: h5py.Group, channel: ChannelData) -> int:
    """An NXlog: ``time`` relative to its ``start`` attribute, then value/severity/status.

    Returns the rows written.

    Numeric columns through :mod:`~epics_collector.storage._hdf5` (100,000 channels are
    100,000 of these); string values through h5py's own (variable-length) datasets.
    """
    log = new_group(group.id, channel.alias)
    set_text(log, "NX_class", "NXlog")
    set_text(log, "source", channel.pv)
    set_text(log, "kind", channel.kind)
    rows = channel.load()
    n = len(rows)
    start = float(rows.time[0]) if n else 0.0
    chunks = min(n, CHUNK_ROWS) if n else None
    time = new_dataset(log, "time", (n,), np.dtype("f8"), chunks)
    set_text(time, "start", iso(start))
    set_text(time, "units", "s")
    value_shape = (n, *rows.value.shape[1:])
    value: Any = None  # h5py's dataset for strings
    if rows.value.dtype == object:
        value = h5py.Group(log).create_dataset(
            "value", shape=value_shape, dtype=h5py.string_dtype()
        )
        value_id = value.id
    else:
        value_id = new_dataset(log, "value", value_shape, rows.value.dtype)
    if channel.units:
        set_text(value_id, "units", channel.units)
    severity = new_dataset(log, "severity", (n,), np.dtype("i1"))
    write_rows(severity, 0, rows.severity)
    status = new_dataset(log, "status", (n,), np.dtype("i1"))
    write_rows(status, 0, rows.status)
    set_text(severity, "description", SEVERITY_TEXT)
    set_text(status, "description", STATUS_TEXT)
    for part in _chunks(n):
        write_rows(time, part.start, rows.time[part] - start)
        if rows.value.dtype == object:
            value[part] = rows.value[part]
        else:
            write_rows(value_id, part.start, rows.value[part])
    return n


def write_nexus(path: Path, data: ExportData, root: Path | None = None) -> int:
    """Write a NeXus file with one ``NXentry`` (layout in docs/how-to/export.md).

    Written through a new partial file, following no symlink below ``root``.
    """
    now = datetime.now(UTC).isoformat()
    with new_file(path, root) as handle, h5py.File(handle, "w") as f:
        f.attrs["default"] = "entry"
        f.attrs["file_name"] = path.name
        f.attrs["file_time"] = now
        f.attrs["creator"] = "epics-collector"
        entry = f.create_group("entry")
        entry.attrs["NX_class"] = "NXentry"
        entry["program_name"] = "epics-collector"
        entry["entry_identifier"] = data.device
        spans = [span for c in data.channels if (span := c.times()) is not None]
        if spans:
            entry["start_time"] = iso(min(first for first, _ in spans))
            entry["end_time"] = iso(max(last for _, last in spans))
        channels = entry.create_group("channels")
        channels.attrs["NX_class"] = "NXcollection"
        written = sum(_write_log(channels, channel) for channel in data.channels)
        snapshots = entry.create_group("snapshots")
        snapshots.attrs["NX_class"] = "NXcollection"
        for snapshot in data.snapshots:
            group = snapshots.create_group(f"snapshot_{snapshot.id}")
            group.attrs["NX_class"] = "NXcollection"
            group.attrs["trigger_time"] = iso(snapshot.trigger_time)
            group.attrs["start"] = iso(snapshot.start)
            group.attrs["end"] = iso(snapshot.end)
            group.attrs["complete"] = snapshot.complete
            for channel in snapshot.channels:
                _write_log(group, channel)
        notes = entry.create_group("annotations")
        notes.attrs["NX_class"] = "NXcollection"
        notes.create_dataset("time", data=np.array([t for t, _ in data.annotations], "f8"))
        notes.create_dataset(
            "text", data=[text for _, text in data.annotations], dtype=h5py.string_dtype()
        )
        config = entry.create_group("configuration")
        config.attrs["NX_class"] = "NXnote"
        config["type"] = "application/json"
        config["data"] = data.config_json
    return written


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
