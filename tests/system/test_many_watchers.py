"""Thousands of monitors opening and closing (issue 18, finding 4): no deadlock, no loss.

20 client processes each open monitors on all 300 PVs of a 50-channel collector
(history, Tail and View PVs, served on demand), hold them 0.2-1.5 s, close them and
start again, while the collector records 50 sources. Before the fix the device hung for good within
seconds (``SharedPV.open`` on the event loop against pvxs's server thread).
``EPICS_COLLECTOR_STRESS_SECONDS`` sets the duration (default 12; the closing note of
issue 18 has a 60 s run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from epics_collector.process import wait_for
from epics_collector.sim import PvaSource

pytestmark = [pytest.mark.system, pytest.mark.load]

SECONDS = float(os.environ.get("EPICS_COLLECTOR_STRESS_SECONDS", "12"))
CLIENTS, CHANNELS, RATE = 20, 50, 10
CHURN = Path(__file__).with_name("churn_client.py")


@pytest.mark.timeout(SECONDS + 120)
def test_6000_churning_monitors_neither_hang_nor_lose(network, collector, prefix, ctx):
    count = int(SECONDS * RATE)
    with PvaSource(
        prefix + "S", network.environ(), channels=CHANNELS, rate=RATE, count=count
    ) as src:
        names = src.names(CHANNELS)
        channels = [{"pv": n, "alias": f"c{i}"} for i, n in enumerate(names)]
        collector({"channels": channels, "autostart": True})
        wait_for(lambda: ctx.get(prefix + "Count") == CHANNELS, 10, "every initial value")
        pvs = [
            f"{prefix}c{i}:{pv}"
            for i in range(CHANNELS)
            for pv in ("Value", "Time", "Table", "Tail", "View:Max", "Connected")
        ]
        clients = [
            subprocess.Popen(
                [sys.executable, str(CHURN), str(SECONDS), *pvs],
                env=network.environ(),
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,  # p4p's client logs closes racing updates
                text=True,
            )
            for _ in range(CLIENTS)
        ]
        try:
            ctx.put(prefix + "S:Go", 1)
            started = time.monotonic()
            beats, slowest = [], 0.0
            while time.monotonic() - started < SECONDS:
                asked = time.monotonic()
                beats.append(int(ctx.get(prefix + "Heartbeat")))  # times out if hung
                slowest = max(slowest, time.monotonic() - asked)
                time.sleep(max(0.0, 1.0 - (time.monotonic() - asked)))
            outputs = [client.communicate(timeout=60)[0] for client in clients]
        finally:
            for client in clients:
                client.kill()
                client.communicate()  # (reaped, its pipe closed: nothing leaks into later tests)
        assert slowest < 2.0, f"a Heartbeat get took {slowest:.1f} s"
        assert beats[-1] - beats[0] >= len(beats) - 3, f"Heartbeat stalled: {beats}"
        cycles = [int(out.split()[-1]) for out in outputs]
        assert min(cycles) >= 3, f"the clients hardly churned: {cycles}"
        expected = CHANNELS * (count + 1)
        wait_for(lambda: ctx.get(prefix + "Count") == expected, 20, f"{expected} samples")
        assert ctx.get(prefix + "Dropped") == 0
