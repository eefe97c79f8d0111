"""A full disk under a persisting collector (issue 18, finding 2): nothing lost, nothing torn.

The data directory is a small tmpfs mounted by the test (skipped where mounting is not
permitted). The disk is filled while the collector records, freed again, then the
collector is killed with SIGKILL and restarted: every update is in the reloaded history,
in order, and no row has a time of 0.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from epics_collector.process import DeviceProcess, wait_for
from epics_collector.pva import Client
from epics_collector.sim import PvaSource

pytestmark = pytest.mark.system

COUNT = 3000  # updates at 500 Hz: 6 s


def fill(disk: Path) -> Path:
    """Fill the disk to the last byte; the filler file."""
    filler = disk / "filler"
    block = b"\0" * 65536
    with filler.open("wb") as file:
        with contextlib.suppress(OSError):
            while True:
                file.write(block)
                file.flush()
        while True:  # the last partial block
            try:
                os.write(file.fileno(), b"\0" * 512)
            except OSError as error:
                assert error.errno == errno.ENOSPC
                break
    return filler


def rows_on_disk(data: Path) -> int:
    with sqlite3.connect(data / "spill" / "history.sqlite") as db:
        (rows,) = db.execute(
            "SELECT coalesce(sum(rows), 0) FROM chunks WHERE channel='c'"
        ).fetchone()
    return int(rows)


def test_a_full_disk_loses_nothing_and_corrupts_nothing(small_disk, network, prefix):
    data = small_disk / "data"
    source = prefix + "SRC"
    with PvaSource(source, network.environ(), channels=1, rate=500, count=COUNT) as src:
        config = {"channels": [{"pv": src.names(1)[0], "alias": "c"}], "persist": True}

        def start() -> DeviceProcess:
            return DeviceProcess(
                "collector", prefix, config, env=network.environ(), data_dir=data
            ).start()

        first = start()
        try:
            with Client(network) as ctx:
                wait_for(lambda: ctx.get(prefix + "c:Connected"), 10, "source connected")
                ctx.put(prefix + "Start", 1)
                ctx.put(source + ":Go", 1)
                filler = fill(small_disk)
                wait_for(
                    lambda: "to disk failed" in ctx.get(prefix + "Message"), 5, "flush failure"
                )
                assert ctx.get(prefix + "Message").severity == 2  # MAJOR
                full_at = ctx.get(prefix + "Count")
                wait_for(lambda: ctx.get(prefix + "Count") > full_at + 300, 10, "rows meanwhile")
                filler.unlink()
                wait_for(lambda: "works again" in ctx.get(prefix + "Message"), 5, "recovery")
                wait_for(lambda: ctx.get(source + ":Posted") == COUNT, 20, "source done")
                # the value at Start and every update
                wait_for(lambda: ctx.get(prefix + "Count") == COUNT + 1, 10, "all recorded")
                wait_for(lambda: rows_on_disk(data) == COUNT + 1, 5, "all on disk")
                assert ctx.get(prefix + "Dropped") == 0
            first.process.popen.send_signal(signal.SIGKILL)
            first.process.popen.wait()
        finally:
            first.stop()
        second = start()
        try:
            with Client(network) as ctx:
                table = ctx.get(prefix + "c:Table").value
        finally:
            second.stop()
    assert table.time.min() > 1e9, "a row with no real time was served"
    gaps = np.flatnonzero(np.isnan(table.value))
    assert len(gaps) == 1, "one gap row marks the kill"
    before_kill = table.value[: gaps[0]]
    assert np.array_equal(before_kill, np.arange(0, COUNT + 1)), "rows lost or out of order"
