"""Processing at rate: outputs reach watchers run by run, unwatched ones stay fresh, and
``distribute`` splits one stream between devices without gaps or overlaps."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from p4p.client.thread import Context

from epics_collector.process import wait_until
from epics_collector.sim import PvaSource

pytestmark = pytest.mark.system


def require(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Wait until ``predicate()`` holds; fail naming ``what`` if it does not in time."""
    assert wait_until(predicate, timeout), f"timed out after {timeout} s waiting for {what}"


class Recorder:
    """A lossless monitor of one PV: every value and its sequence of timestamps."""

    def __init__(self, network: Any, name: str) -> None:
        self.values: list[float] = []
        self._lock = threading.Lock()
        self._ctx = Context("pva", conf=network.client_conf(), useenv=False, nt=False)
        request = "record[queueSize=100000]field()"
        self._sub = self._ctx.monitor(name, self._on, request=request)

    def _on(self, value: Any) -> None:
        with self._lock:
            self.values.append(float(value["value"]))

    def snapshot(self) -> list[float]:
        with self._lock:
            return list(self.values)

    def close(self) -> None:
        self._sub.close()
        self._ctx.close()


@pytest.fixture
def recorder(network: Any) -> Any:
    made: list[Recorder] = []

    def start(name: str) -> Recorder:
        made.append(Recorder(network, name))
        return made[-1]

    yield start
    for item in made:
        item.close()


def test_every_run_reaches_a_monitoring_client(network, device_process, recorder, prefix, ctx):
    count = 4000
    with PvaSource("PRATE", network.environ(), rate=2000, count=count):
        config = {
            "inputs": {"a": "PRATE0000"},
            "processor": {"name": "calc", "params": {"expression": "a * 2"}},
        }
        device_process("processing", prefix, config)
        results = recorder(prefix + "result")
        require(lambda: len(results.snapshot()) >= 1, 10, "the first output")
        ctx.put("PRATE:Go", 1)
        require(lambda: 2.0 * count in results.snapshot(), 30, "the output of the last update")
        require(
            lambda: ctx.get(prefix + "Count") + ctx.get(prefix + "Skipped") >= count + 1,
            5,
            "Count and Skipped to account for every update",
        )
        skipped = int(ctx.get(prefix + "Skipped"))
    seen = [v for v in results.snapshot() if v > 0]
    assert np.all(np.diff(seen) > 0), "outputs out of order"
    assert all(v % 2 == 0 for v in seen), "an output is not a * 2"
    # every update's output reached the client, or the update was counted as skipped
    assert len(seen) + skipped == count, (len(seen), skipped)


def test_an_unwatched_output_is_fresh_within_a_tenth_of_a_second(
    network, device_process, prefix, ctx
):
    with PvaSource("PFRESH", network.environ(), rate=200, count=100):
        config = {
            "inputs": {"a": "PFRESH0000"},
            "processor": {"name": "calc", "params": {"expression": "a + 1"}},
        }
        device_process("processing", prefix, config)
        # a client that stays connected to Count but not to result
        require(lambda: ctx.get(prefix + "Count") >= 1, 10, "the first run")
        ctx.put("PFRESH:Go", 1)
        require(lambda: ctx.get(prefix + "Count") == 101, 10, "100 runs")
        with Context("pva", conf=network.client_conf(), useenv=False) as fresh:
            require(lambda: fresh.get(prefix + "result") == 101.0, 1, "the newest output")


@pytest.mark.parametrize("count", [2, 3])
def test_distribute_splits_a_stream_without_gaps_or_overlaps(
    network, device_process, recorder, prefix, ctx, count
):
    frames = 300
    with PvaSource("PDIST", network.environ(), rate=500, count=frames, image=(8, 8)):
        prefixes = [f"{prefix}D{i}:" for i in range(count)]
        shares = []
        for index, device in enumerate(prefixes):
            config = {
                "inputs": {"img": "PDIST0000"},
                "processor": {"name": "stats"},
                "distribute": {"index": index, "count": count},
            }
            device_process("processing", device, config)
            shares.append(recorder(device + "n"))  # one output per run, stamped per frame
        require(
            lambda: all(str(ctx.get(d + "State")) == "Running" for d in prefixes), 10, "Running"
        )
        ctx.put("PDIST:Go", 1)
        require(
            lambda: sum(ctx.get(d + "Count") for d in prefixes) >= frames, 20, "every frame taken"
        )
        counts = [int(ctx.get(d + "Count")) for d in prefixes]
        skipped = [int(ctx.get(d + "Skipped")) for d in prefixes]
    # frame 0 (current at connect) went to device 0 only; then each takes every count-th
    expected = [len(range(i, frames + 1, count)) for i in range(count)]
    assert counts == expected, (counts, expected)
    assert skipped == [0] * count
