"""Snapshots of trigger windows: frozen rows of every channel, kept in memory and on disk."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from epics_collector.collector._spill_ledger import read_legacy
from epics_collector.storage import Columns, SpillStore, concat, write_json_atomic


@dataclass
class Snapshot:
    """The rows of every channel with ``start <= time <= end`` around one trigger."""

    id: int
    trigger_time: float
    start: float
    end: float
    rows: dict[str, Columns]
    complete: bool  # False if the ring had already dropped rows of the window

    @property
    def samples(self) -> int:
        """Rows in all channels."""
        return sum(len(r) for r in self.rows.values())


ROWS = "rows.sqlite"


def _rows(parts: list[Columns], text: bool) -> Columns:
    return concat(*parts) if parts else Columns.empty(object if text else np.float64)


def _legacy(folder: Path, alias: str, text: bool) -> Columns:
    """A channel's rows in a snapshot written before decision 0011 (``<alias>.rec``)."""
    path = folder / f"{alias}.{'jsonl' if text else 'rec'}"
    return read_legacy(path) if path.exists() else _rows([], text)


class SnapshotStore:
    """Snapshots under ``directory/<id>/``: ``snapshot.json`` and the rows (``rows.sqlite``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def save(self, snapshot: Snapshot) -> None:
        """Write a snapshot (its JSON last, so a half-written one is never loaded)."""
        folder = self.directory / str(snapshot.id)
        folder.mkdir(parents=True, exist_ok=True)
        store = SpillStore(folder / ROWS)
        try:
            store.write(snapshot.rows.items())
        finally:
            store.close()
        meta = {
            "id": snapshot.id,
            "trigger_time": snapshot.trigger_time,
            "start": snapshot.start,
            "end": snapshot.end,
            "complete": snapshot.complete,
            "aliases": sorted(snapshot.rows),
        }
        write_json_atomic(folder / "snapshot.json", meta)

    def load(self, text_aliases: set[str]) -> list[Snapshot]:
        """Every complete snapshot on disk, oldest first."""
        found = []
        for meta_path in self.directory.glob("*/snapshot.json"):
            meta = json.loads(meta_path.read_text())
            folder = meta_path.parent
            if not (folder / ROWS).exists():  # an earlier version's files, one per channel
                rows = {
                    alias: _legacy(folder, alias, alias in text_aliases)
                    for alias in meta["aliases"]
                }
            else:
                store = SpillStore(folder / ROWS)
                try:
                    rows = {
                        alias: _rows(store.load(alias).parts, alias in text_aliases)
                        for alias in meta["aliases"]
                    }
                finally:
                    store.close()
            found.append(
                Snapshot(
                    meta["id"],
                    meta["trigger_time"],
                    meta["start"],
                    meta["end"],
                    rows,
                    meta["complete"],
                )
            )
        return sorted(found, key=lambda s: s.id)

    def delete(self, snapshot_id: int) -> None:
        """Remove a snapshot's files."""
        shutil.rmtree(self.directory / str(snapshot_id), ignore_errors=True)


def table(snapshots: list[Snapshot]) -> dict[str, np.ndarray]:
    """The ``Snapshots`` NTTable columns."""
    return {
        "id": np.array([s.id for s in snapshots], np.int64),
        "trigger_time": np.array([s.trigger_time for s in snapshots]),
        "start": np.array([s.start for s in snapshots]),
        "end": np.array([s.end for s in snapshots]),
        "samples": np.array([s.samples for s in snapshots], np.int64),
        "complete": np.array([s.complete for s in snapshots], np.bool_),
    }


SNAPSHOT_COLUMNS = {
    "id": np.int64,
    "trigger_time": np.float64,
    "start": np.float64,
    "end": np.float64,
    "samples": np.int64,
    "complete": np.bool_,
}
