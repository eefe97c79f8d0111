"""Crash-safe append-only files of history rows (decision record 0004).

Numeric channels: packed little-endian records ``time f8, value f8, severity i1,
status i1`` (18 bytes), written with one ``write`` per flush. A record cut short by a
kill is detected by the file size and dropped on load. String channels: one JSON array
per line; a cut last line is dropped on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from epics_collector.storage._ring import Columns

RECORD = np.dtype([("time", "<f8"), ("value", "<f8"), ("severity", "i1"), ("status", "i1")])


def array_record(dtype: np.dtype, shape: tuple[int, ...]) -> np.dtype:
    """The record of an array channel: like :data:`RECORD` with a value of ``shape``."""
    return np.dtype(
        [
            ("time", "<f8"),
            ("value", dtype.newbyteorder("<"), shape),
            ("severity", "i1"),
            ("status", "i1"),
        ]
    )


class SpillFile:
    """One channel's rows on disk; :meth:`append` then :meth:`flush` makes them durable.

    Array channels keep their record layout (value dtype and shape) in a JSON header
    next to the file, written before the first row.
    """

    def __init__(self, path: Path, *, text: bool = False) -> None:
        self.path, self.text = path, text
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._pending: list[bytes] = []
        self.rows_on_disk = 0
        self.header = path.with_suffix(path.suffix + ".json")
        self.record = RECORD
        if self.header.exists():
            layout = json.loads(self.header.read_text())
            self.record = array_record(np.dtype(layout["dtype"]), tuple(layout["shape"]))

    def set_array_layout(self, dtype: np.dtype, shape: tuple[int, ...]) -> None:
        """Declare the value layout of an array channel (before its first row)."""
        record = array_record(dtype, shape)
        if not self.header.exists():
            write_json_atomic(
                self.header, {"dtype": dtype.newbyteorder("<").str, "shape": list(shape)}
            )
        elif record != self.record:
            raise ValueError(f"{self.path.name}: rows on disk have another shape or dtype")
        self.record = record

    def load(self) -> Columns:
        """Every complete row in the file, oldest first (a torn last row is cut off)."""
        if not self.path.exists():
            return Columns.empty(object if self.text else np.float64)
        rows = self._load_text() if self.text else self._load_binary()
        self.rows_on_disk = len(rows)
        return rows

    def _load_binary(self) -> Columns:
        size = self.path.stat().st_size
        whole = size - size % self.record.itemsize
        if whole != size:
            os.truncate(self.path, whole)
        data = np.fromfile(self.path, self.record)
        return Columns(
            data["time"].copy(),
            data["value"].copy(),
            data["severity"].copy(),
            data["status"].copy(),
        )

    def _load_text(self) -> Columns:
        good: list[list[object]] = []
        length = 0
        with self.path.open("rb") as file:
            for line in file:
                try:
                    good.append(json.loads(line))
                except ValueError:
                    break
                if not line.endswith(b"\n"):
                    good.pop()
                    break
                length += len(line)
        os.truncate(self.path, length)
        columns = list(zip(*good, strict=True)) if good else [(), (), (), ()]
        return Columns(
            np.array(columns[0], np.float64),
            np.array(columns[1], object),
            np.array(columns[2], np.int8),
            np.array(columns[3], np.int8),
        )

    def append(self, rows: Columns) -> None:
        """Queue rows for the next :meth:`flush`."""
        if len(rows) == 0:
            return
        if self.text:
            lines = (
                json.dumps([float(t), str(v), int(s), int(a)]) + "\n"
                for t, v, s, a in zip(
                    rows.time, rows.value, rows.severity, rows.status, strict=True
                )
            )
            self._pending.append("".join(lines).encode())
        else:
            if rows.value.ndim > 1 and self.record == RECORD:
                self.set_array_layout(rows.value.dtype, rows.value.shape[1:])
            data = np.empty(len(rows), self.record)
            data["time"], data["value"] = rows.time, rows.value
            data["severity"], data["status"] = rows.severity, rows.status
            self._pending.append(data.tobytes())
        self.rows_on_disk += len(rows)

    def flush(self) -> None:
        """Write queued rows with one append (survives a kill of this process)."""
        if not self._pending:
            return
        payload, self._pending = b"".join(self._pending), []
        with self.path.open("ab") as file:
            file.write(payload)

    def rewrite(self, rows: Columns) -> None:
        """Replace the file by ``rows`` atomically (compaction, clear)."""
        self._pending = []
        tmp = self.path.with_suffix(self.path.suffix + ".tmp")
        tmp.unlink(missing_ok=True)
        self.rows_on_disk = 0
        self.path, original = tmp, self.path
        try:
            self.append(rows)
            self.flush()
            tmp.touch()
        finally:
            self.path = original
        os.replace(tmp, self.path)


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON so that readers see the old or the new file, never half of one."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w") as file:
        json.dump(data, file)
        file.flush()
        os.fsync(file.fileno())  # on disk before the rename, so a power cut keeps one of them
    os.replace(tmp, path)
