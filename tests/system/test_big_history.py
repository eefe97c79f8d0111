"""A collector holding 1e7 rows: a trigger freeze and an export never stall the loop.

A freeze reads only its window and an export streams channel by channel from the
executor (issue 40): the event loop, which serves every PV and beats Heartbeat, keeps
answering within half a second, and the export's extra memory stays near one channel's
copy, far under the history's size.
"""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Iterator

import h5py
import numpy as np
import pytest

from epics_collector.process import wait_for
from epics_collector.storage import Columns

pytestmark = pytest.mark.system

CHANNELS = 10
ROWS = 1_000_000  # per channel: 1e7 in all
ROW_BYTES = 8 + 8 + 1 + 1  # time, value, severity, status
STALL_LIMIT = 0.5  # seconds the event loop may be busy at most


class LoopWatch:
    """Measures how late the device's event loop runs a callback asked every 20 ms."""

    def __init__(self, loop: object) -> None:
        self.loop = loop
        self.worst = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="loop watch", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            asked = time.monotonic()
            ran = threading.Event()

            def on_loop(asked: float = asked, ran: threading.Event = ran) -> None:
                self.worst = max(self.worst, time.monotonic() - asked)
                ran.set()

            self.loop.call_soon_threadsafe(on_loop)  # type: ignore[attr-defined]
            if not ran.wait(10.0):
                self.worst = max(self.worst, time.monotonic() - asked)
            self._stop.wait(0.02)

    def __enter__(self) -> LoopWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture
def big(sim_ioc, collector, prefix) -> Iterator[object]:
    """A collector whose 10 channels hold 1e6 rows each (the newest 1000 s)."""
    channels = [{"pv": f"{sim_ioc.prefix}Counter", "alias": f"c{i}"} for i in range(CHANNELS)]
    trigger = {"pv": sim_ioc.prefix + "Image:Width", "when": "change", "pre": 50, "post": 0.2}
    served = collector({"channels": channels, "capacity": ROWS, "trigger": trigger})
    recorder = served.device.recorder
    now = time.time()
    times = now - 1000.0 + np.arange(ROWS) * (1000.0 / ROWS)
    zeros = np.zeros(ROWS, np.int8)
    for channel in recorder.channels:
        recorder.unflushed.restore(
            channel, Columns(times, np.arange(ROWS, dtype=float), zeros, zeros)
        )
    yield served


@pytest.mark.timeout(180)
def test_a_freeze_and_an_export_of_1e7_rows_keep_the_loop_answering(big, ctx, prefix, tmp_path):
    served = big
    ctx.put(prefix + "Start", 1)
    with LoopWatch(served.loop) as watch:
        ctx.put(prefix + "Trigger", 1)
        wait_for(lambda: len(ctx.get(prefix + "Snapshots").value.id) == 1, 30, "the snapshot")
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        before = int(ctx.get(prefix + "Count").value)
        ctx.put(prefix + "Export", "big", timeout=120)  # answered once the file is complete
        recorded = int(ctx.get(prefix + "Count").value) - before  # (each overwrote an oldest)
        peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    ctx.put(prefix + "Stop", 1)
    snapshot = ctx.get(prefix + "Snapshots").value
    # the window's 50 s reach back into the rows filled before the test (1000 per s)
    assert snapshot.samples[0] >= CHANNELS * 40_000, "the window holds its rows"
    size = CHANNELS * ROWS * ROW_BYTES
    with h5py.File(tmp_path / "data" / "big.nxs") as f:
        lengths = [len(f[f"entry/channels/c{i}/value"][()]) for i in range(CHANNELS)]  # type: ignore[index]
    # the full rings as the export read them: a row recorded meanwhile overwrote the
    # oldest row of its channel, perhaps before the export reached it (at most one each)
    assert min(lengths) >= ROWS - recorded, f"the file lacks rows: {lengths}, {recorded=}"
    assert watch.worst <= STALL_LIMIT, f"the event loop stalled {watch.worst:.2f} s"
    assert peak <= 1.2 * size, f"the export took {peak / 1e6:.0f} MB extra for {size / 1e6:.0f} MB"
    # streaming: about one channel's copy at a time, far below the whole history
    assert peak <= 0.5 * size, f"the export took {peak / 1e6:.0f} MB: not streamed per channel"
