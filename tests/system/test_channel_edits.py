"""Channels added to and removed from a recording collector (Add, Remove), under a burst.

A factory's collector records two sources posting 20,000 updates a second in all while
channels are added and removed through the Python client and the CLI. (A restarted
collector replaying its journal: tests/unit/collector/test_editing.py.)
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pytest
from tests.conftest import FactoryHandle, cli

from epics_collector import Factory
from epics_collector.process import wait_for
from epics_collector.pva import Client, Network
from epics_collector.sim import PvaSource

pytestmark = pytest.mark.system
BURST = 20_000  # updates per source, at 10,000 a second each


def _table(fac: FactoryHandle, pv: str) -> dict[str, list[Any]]:
    value = cast(Any, fac.raw_get(pv))["value"]
    return {name: list(value[name]) for name in value.keys()}


def test_adds_and_removes_during_a_burst_lose_nothing(
    factory_process: Callable[..., FactoryHandle], network: Network, prefix: str
) -> None:
    fac = factory_process()
    burst, extra = prefix + "B", prefix + "X"
    config = {
        "channels": [{"pv": burst + "0000", "alias": "b0"}, {"pv": burst + "0001", "alias": "b1"}],
        "autostart": True,
        "persist": True,
        "capacity": 2 * BURST,
    }
    with (
        PvaSource(burst, network.environ(), channels=2, rate=10_000, count=BURST),
        PvaSource(extra, network.environ(), channels=20, rate=10),
    ):
        col = fac.create("collector", "rec", config)
        channels = col + "Channels"
        wait_for(lambda: all(_table(fac, channels)["connected"]), 20, "the burst sources")
        with Factory.connect(fac.prefix, network=network) as client:
            collector = client.collector("rec")
            with Client(network) as source:
                source.put(burst + ":Go", 1)
            took = []
            for k in range(20):  # during the burst
                started = time.perf_counter()
                collector.add_channel({"pv": f"{extra}{k:04d}", "alias": f"x{k}"})
                took.append(time.perf_counter() - started)
            for k in range(0, 20, 2):
                collector.remove_channel(f"x{k}")
            spec = json.dumps({"pv": extra + "0000", "alias": "y", "kind": "number"})
            assert "y: " in cli("add-channel", col, spec).stdout
            assert "x1: removed" in cli("remove-channel", col, "x1").stdout
            refused = cli("add-channel", col, '{"pv": "A", "compress": {"algorithm": "nope"}}')
            assert refused.returncode != 0 and "algorithm" in refused.stderr
            wait_for(lambda: collector.count() >= 2 * BURST, 30, "the whole burst")
            for alias in ("b0", "b1"):  # every update of the others, in order
                rows = collector.history(alias)
                assert rows.value is not None
                assert np.array_equal(rows.value[-BURST:], np.arange(1.0, BURST + 1)), alias
            assert int(cast(Any, fac.ctx.get(col + "Dropped"))) == 0
            assert int(cast(Any, fac.ctx.get(col + "Overruns"))) == 0
            print(f"Add during the burst: median {1e3 * float(np.median(took)):.1f} ms")
            live = ["b0", "b1", *(f"x{k}" for k in range(3, 20, 2)), "y"]
            wait_for(lambda: _table(fac, channels)["alias"] == live, 10, "the channels")
            removed = _table(fac, col + "Removed")
            assert sorted(removed["alias"]) == sorted([*(f"x{k}" for k in range(0, 20, 2)), "x1"])
            wait_for(lambda: all(_table(fac, channels)["connected"][2:]), 20, "the added ones")
            kept = collector.history("x1")  # a removed channel's rows are still read
            assert len(kept.time) >= 1
