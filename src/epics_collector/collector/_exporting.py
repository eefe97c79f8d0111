"""What a collector exports, and its annotations: gathered on the loop, written off it."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from epics_collector.collector._recorder import Channel, Recorder
from epics_collector.collector._triggers import TriggerWindows
from epics_collector.storage import ChannelData, Columns, ExportData, SnapshotData


def gather(
    device: str,
    config_json: str,
    recorder: Recorder,
    triggers: TriggerWindows | None,
    annotations: list[tuple[float, str]],
) -> ExportData:
    """What an export writes: each channel's rows as a reader, called by the writer.

    Nothing is copied here (on the event loop): the writer, in its thread, reads one
    channel at a time (chunk by chunk under the recorder's lock) and lets it go before
    the next, so an export holds one channel's copy, not the whole history's.
    """
    configs = {c.alias: c.config for c in recorder.channels}

    def describe(
        alias: str, rows: Columns | Callable[[], Columns], span: tuple[float, float] | None = None
    ) -> ChannelData:
        config = configs[alias]
        return ChannelData(alias, config.pv, config.kind, rows, config.units, span)

    channels = [
        describe(c.alias, functools.partial(recorder.history, c), _span(recorder, c))
        for c in recorder.channels
    ]
    snapshots = [
        SnapshotData(
            s.id,
            s.trigger_time,
            s.start,
            s.end,
            s.complete,
            [describe(alias, rows) for alias, rows in s.rows.items() if alias in configs],
        )
        for s in (triggers.snapshots if triggers is not None else [])
    ]
    return ExportData(device, config_json, channels, snapshots, list(annotations))


def _span(recorder: Recorder, channel: Channel) -> tuple[float, float] | None:
    first, last = recorder.span(channel)
    return (first, last) if last > 0 else None  # (0, 0): no rows


class Annotations:
    """Timestamped notes; kept in ``annotations.jsonl`` when persisting."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.notes: list[tuple[float, str]] = []
        if path is not None and path.exists():
            for line in path.read_text().splitlines():
                try:
                    t, text = json.loads(line)
                except ValueError:
                    continue  # a line cut by a kill
                self.notes.append((float(t), str(text)))

    def add(self, text: str) -> tuple[float, str]:
        """Store a note stamped now."""
        note = (time.time(), text)
        self.notes.append(note)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW  # never via a link
            with open(os.open(self.path, flags, 0o644), "a") as file:
                file.write(json.dumps(list(note)) + "\n")
        return note
