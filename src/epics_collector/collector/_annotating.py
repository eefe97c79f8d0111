"""A collector's annotations: timestamped notes (Annotate, Annotations), exported too."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np

from epics_collector.collector._names import CollectorPv
from epics_collector.core import AttrR, AttrRW, Part, String, Table


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


class Annotating(Part):
    """Takes notes put to Annotate and serves them as the Annotations table."""

    annotate = AttrRW(
        String(),
        name=CollectorPv.ANNOTATE,
        description="Put text: a timestamped note (exported with the data)",
    )
    annotation_table = AttrR(
        Table(columns={"time": np.float64, "text": str}),
        name=CollectorPv.ANNOTATIONS,
        description="Notes: time (POSIX s), text",
    )

    def __init__(self, path: Path | None) -> None:
        """Notes are kept in ``path`` (None: in memory only), and read back from it."""
        self.annotations = Annotations(path)
        self._publish()

    @property
    def notes(self) -> list[tuple[float, str]]:
        """Every note, oldest first: (time, text)."""
        return self.annotations.notes

    @annotate.on_put
    async def _annotate(self, text: str) -> None:
        if not text.strip():
            raise ValueError("an annotation needs some text")
        self.annotations.add(text)
        self._publish()

    def _publish(self) -> None:
        notes = self.annotations.notes
        self.annotation_table.set({"time": [t for t, _ in notes], "text": [n for _, n in notes]})
