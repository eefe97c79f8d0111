"""The NeXus writer (:func:`epics_collector.storage.write_nexus` imports it on first use).

h5py is imported here and only here among the modules a device imports at start: it
costs about 12 MB resident per process (measured with ``bench/many_channels.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from epics_collector.storage._export import (
    CHUNK_ROWS,
    SEVERITY_TEXT,
    STATUS_TEXT,
    ChannelData,
    ExportData,
    _chunks,
    iso,
)
from epics_collector.storage._hdf5 import new_dataset, new_group, set_text, write_rows
from epics_collector.storage._paths import new_file


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
