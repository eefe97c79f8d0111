"""What the recorder says about updates it does not record as they came (said once each).

Each is a loss an archiver must own up to: counted in Dropped (and the Channels row),
and said once in Message with its cause, until a Clear starts a new history.
"""

from __future__ import annotations

from typing import Any


def failed(alias: str, failures: int, error: Exception) -> str:
    """Recording an update raised (a bug, or a config the values cannot meet)."""
    return (
        f"{alias}: recording its updates failed ({failures} so far, counted in Dropped): "
        f"{type(error).__name__}: {error}"
    )


def wrong_kind(alias: str, value: Any, kind: str, error: Exception) -> str:
    """A value that the channel's kind cannot hold."""
    return f"{alias}: cannot record {type(value).__name__} values as kind {kind!r} ({error})"


def no_timestamps(alias: str) -> str:
    """A source that sends no timestamps.

    A server that never fills ``timeStamp`` (p4p's ``SharedPV.post`` without
    ``timestamp=``) still measures values: they are kept, stamped as they arrive.
    """
    return (
        f"{alias}: the source sends no timestamps (timeStamp is 0); its updates are "
        "recorded with the time they arrived"
    )


def bad_time(alias: str, stamp: float) -> str:
    """An update with no valid source time.

    A record that was never processed (the first update after an IOC restart is its UDF
    value at EPICS time 0, 1990-01-01) holds no measured value: recording it would put a
    fake sample into the history. As in the Archiver Appliance, it is dropped and
    counted by cause; the history shows a gap until the first real value.
    """
    return (
        f"{alias}: the source sent an update with no valid timestamp ({stamp!r}: never "
        "processed, or no time given); such updates are not recorded (counted in Dropped "
        "and in the Channels row's bad_time)"
    )


def late(alias: str, stamp: float, newest: float) -> str:
    """A source update older than the channel's newest row.

    Rows stay in time order (every read relies on it), as in the Archiver Appliance,
    which also drops samples whose timestamp goes back.
    """
    return (
        f"{alias}: the source's timestamp went back ({stamp:.6f} is before the newest row "
        f"at {newest:.6f}); such updates are not recorded (counted in Dropped)"
    )


def gave_up(alias: str, rows: int) -> str:
    """Rows that waited too long for the spill store (a flush stalled): lost."""
    return (
        f"{alias}: {rows} recorded rows were given up before the history on disk took "
        "them (its writes stalled while the ring turned over): counted in Dropped"
    )
