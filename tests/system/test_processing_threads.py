"""Parameters change while the processor runs fast: every run sees one whole, current set.

The event loop takes parameter puts while the processing thread runs the processor; the
:class:`~epics_collector.processing.Runner` applies a new set between two batches. Here
puts come at about 1 kHz while runs come at about 5 kHz, and the outputs tell which
parameters each run saw, and when.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from p4p.client.thread import Context
from tests.plugins import install_plugin

from epics_collector.process import wait_for
from epics_collector.sim import PvaSource

pytestmark = [pytest.mark.system, pytest.mark.load]

PAIR = """
import numpy as np

from epics_collector.processing import Params, Processor


class PairParams(Params):
    a: int = 0
    b: int = 0
    c: int = 0
    d: int = 0
    e: int = 0
    f: int = 0


class Pair(Processor[PairParams]):
    params_model = PairParams
    default_outputs = {"seen": "float64[]"}

    def process(self, inputs):
        p = self.params
        return {"seen": np.array([p.a, p.b, p.c, p.d, p.e, p.f, inputs["x"].value], float)}
"""
RUNS = 10_000  # source updates, at 5 kHz
PAIRS = ("ab", "cd", "ef")  # each pair put by its own client thread
PUT_RATE = 1000.0 / len(PAIRS)  # per pair


def test_parameters_put_at_1khz_during_runs_at_5khz_are_seen_whole_and_in_order(
    network, device_process, prefix, ctx, tmp_path, monkeypatch
):
    install_plugin(tmp_path, monkeypatch, "pair", PAIR, "Pair")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))  # the device's process finds it too
    source = prefix + "SRC"
    with PvaSource(source, network.environ(), rate=5000, count=RUNS):
        config = {"inputs": {"x": source + "0000"}, "processor": {"name": "pair"}, "timeout": 30}
        device_process("processing", prefix, config)
        seen: list[tuple[float, ...]] = []  # a, b, c, d, e, f, x, timestamp

        def on_output(value) -> None:
            if len(value) == 0:  # no run yet
                return
            seen.append((*(float(v) for v in value), value.timestamp))

        sub = ctx.monitor(prefix + "seen", on_output, request="record[queueSize=100000]field()")
        wait_for(lambda: bool(seen), 10, "the first output")
        puts = [0] * len(PAIRS)
        done = threading.Event()

        def put_pairs(index: int, first: str, second: str) -> None:
            start = time.monotonic()
            k = 0
            with Context("pva", conf=network.client_conf(), useenv=False) as own:
                while not done.is_set():
                    k += 1
                    own.put(prefix + f"Param:{first}", k, get=False)  # (k, k-1), then (k, k)
                    own.put(prefix + f"Param:{second}", k, get=False)
                    puts[index] += 2
                    pause = start + puts[index] / PUT_RATE - time.monotonic()  # pacing
                    if pause > 0:
                        time.sleep(pause)

        putters = [
            threading.Thread(target=put_pairs, args=(i, *pair), name=f"puts {pair}")
            for i, pair in enumerate(PAIRS)
        ]
        started = time.monotonic()
        ctx.put(source + ":Go", 1)
        for putter in putters:
            putter.start()
        try:
            wait_for(lambda: seen[-1][-2] >= RUNS, 60, "the output of the last update")
        finally:
            done.set()
            for putter in putters:
                putter.join(10)
            sub.close()
        seconds = time.monotonic() - started
        runs = int(ctx.get(prefix + "Count"))
    print(f"{runs} runs and {sum(puts)} puts in {seconds:.1f} s")
    rows = np.array(seen)
    for first in range(0, 2 * len(PAIRS), 2):
        pairs = rows[:, [first, first + 1]].astype(int)
        # one whole set: each run saw a state the puts went through, (k, k-1) or (k, k)
        steps = pairs[:, 0] - pairs[:, 1]
        assert set(steps.tolist()) <= {0, 1}, pairs[(steps != 0) & (steps != 1)][:5]
        # never an older set after a newer one
        order = pairs[:, 0] + pairs[:, 1]
        assert np.all(np.diff(order) >= 0), "a run saw older parameters after newer ones"
        assert len(set(order.tolist())) >= 20, "too few parameter sets seen during the runs"
    # outputs in input order, and never back in time
    assert np.all(np.diff(rows[:, -2]) > 0), "outputs out of order"
    assert np.all(np.diff(rows[:, -1]) >= 0), "an output went back in time"
    assert str(ctx.get(prefix + "State")) == "Running"
    assert int(ctx.get(prefix + "Errors")) == 0
