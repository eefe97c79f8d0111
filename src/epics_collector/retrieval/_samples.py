"""Samples of one PV as the retrieval API sends them: seconds, nanoseconds, value, alarm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Samples:
    """Rows in time order.

    ``secs`` (POSIX, int64), ``nanos`` (int32), ``value`` (one entry per row: numbers,
    strings as objects, or a 2-D array for waveforms), ``severity`` and ``status`` (int32).
    """

    secs: np.ndarray
    nanos: np.ndarray
    value: np.ndarray
    severity: np.ndarray
    status: np.ndarray

    def __len__(self) -> int:
        return len(self.secs)

    @classmethod
    def empty(cls, dtype: np.dtype | type = np.float64) -> Samples:
        return cls(
            np.zeros(0, np.int64),
            np.zeros(0, np.int32),
            np.zeros(0, dtype),
            np.zeros(0, np.int32),
            np.zeros(0, np.int32),
        )

    @classmethod
    def from_seconds(
        cls, time: np.ndarray, value: np.ndarray, severity: np.ndarray, status: np.ndarray
    ) -> Samples:
        """From POSIX seconds as floats (nanoseconds rounded from the float)."""
        ns = np.rint(np.asarray(time, np.float64) * 1e9).astype(np.int64)
        return cls.from_ns(ns, value, severity, status)

    @classmethod
    def from_ns(
        cls, ns: np.ndarray, value: np.ndarray, severity: np.ndarray, status: np.ndarray
    ) -> Samples:
        """From exact timestamps in int64 nanoseconds since the epoch."""
        secs, nanos = np.divmod(np.asarray(ns, np.int64), 1_000_000_000)
        return cls(
            secs,
            nanos.astype(np.int32),
            np.asarray(value),
            np.asarray(severity, np.int32),
            np.asarray(status, np.int32),
        )

    @property
    def time(self) -> np.ndarray:
        """POSIX seconds as floats (for binning and comparisons)."""
        return self.secs + self.nanos * 1e-9

    def take(self, index: np.ndarray | slice) -> Samples:
        return Samples(
            self.secs[index],
            self.nanos[index],
            self.value[index],
            self.severity[index],
            self.status[index],
        )

    def stamps(self) -> np.ndarray:
        """One int64 per row that orders rows as their time does (ns since the epoch)."""
        return self.secs * 1_000_000_000 + self.nanos


def concat(parts: list[Samples]) -> Samples:
    """The rows of ``parts`` one after the other."""
    if not parts:
        return Samples.empty()
    return Samples(
        *(
            np.concatenate([getattr(p, f) for p in parts])
            for f in ("secs", "nanos", "value", "severity", "status")
        )
    )


def merge(parts: list[Samples]) -> tuple[Samples, np.ndarray]:
    """Rows of several histories of one PV in time order, one history per timestamp.

    Where histories hold the same timestamp, the rows of the earliest part that holds
    it are kept (all of them: a history may hold several rows of one stamp) and the
    others' are left out. Returns the rows and, per row, the index of its part.
    """
    tags = [np.full(len(p), k, np.int32) for k, p in enumerate(parts)]
    rows, source = concat(parts), np.concatenate(tags) if tags else np.zeros(0, np.int32)
    if len([p for p in parts if len(p)]) <= 1:
        return rows, source
    stamps = rows.stamps()
    order = np.lexsort((source, stamps))  # by stamp, then by part (stable within a part)
    rows, source, stamps = rows.take(order), source[order], stamps[order]
    starts = np.ones(len(rows), bool)
    starts[1:] = stamps[1:] != stamps[:-1]
    owner = np.maximum.accumulate(np.where(starts, np.arange(len(rows)), 0))
    keep = source == source[owner]  # the part of each stamp's first row
    return rows.take(keep), source[keep]
