"""Processing at rate: outputs reach watchers run by run, unwatched ones stay fresh, and
``distribute`` splits one stream between devices without gaps or overlaps."""

from __future__ import annotations

import numpy as np
import pytest
from p4p.client.thread import Context

from epics_collector.process import wait_for
from epics_collector.sim import PvaSource

pytestmark = pytest.mark.system


def test_every_run_reaches_a_monitoring_client(
    network, device_process, source_monitor, prefix, ctx
):
    count = 4000
    with PvaSource("PRATE", network.environ(), rate=2000, count=count):
        config = {
            "inputs": {"a": "PRATE0000"},
            "processor": {"name": "calc", "params": {"expression": "a * 2"}},
        }
        device_process("processing", prefix, config)
        results = source_monitor(prefix + "result")
        wait_for(lambda: len(results.updates) >= 1, 10, "the first output")
        ctx.put("PRATE:Go", 1)
        wait_for(
            lambda: any(v == 2.0 * count for v, _, _ in results.updates[-5:]),
            30,
            "the output of the last update",
        )
        # the initial value and the burst; counters are posted at 10 Hz. A machine too
        # busy to drain the source's queue (a CPU hog) loses updates to squashing: then
        # Overruns must say so (p4p does not tell how many)
        wait_for(
            lambda: (
                ctx.get(prefix + "Count") + ctx.get(prefix + "Skipped") == count + 1
                or ctx.get(prefix + "Overruns") > 0
            ),
            5,
            "Count and Skipped to account for every update, or Overruns to report losses",
        )
        skipped = int(ctx.get(prefix + "Skipped"))
        overruns = int(ctx.get(prefix + "Overruns"))
    seen = [v for v, _, _ in results.updates if v > 0]
    assert np.all(np.diff(seen) > 0), "outputs out of order"
    assert all(v % 2 == 0 for v in seen), "an output is not a * 2"
    if not overruns:  # every update's output reached the client, or was counted skipped
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
        wait_for(lambda: ctx.get(prefix + "Count") >= 1, 10, "the first run")
        ctx.put("PFRESH:Go", 1)
        wait_for(lambda: ctx.get(prefix + "Count") == 101, 10, "100 runs")
        with Context("pva", conf=network.client_conf(), useenv=False) as fresh:
            wait_for(lambda: fresh.get(prefix + "result") == 101.0, 1, "the newest output")


@pytest.mark.parametrize("count", [2, 3])
def test_distribute_splits_a_stream_without_gaps_or_overlaps(
    network, device_process, prefix, ctx, count
):
    frames = 300
    with PvaSource("PDIST", network.environ(), rate=500, count=frames, image=(8, 8)):
        prefixes = [f"{prefix}D{i}:" for i in range(count)]
        for index, device in enumerate(prefixes):
            config = {
                "inputs": {"img": "PDIST0000"},
                "processor": {"name": "stats"},
                "distribute": {"index": index, "count": count},
            }
            device_process("processing", device, config)
        wait_for(
            lambda: all(str(ctx.get(d + "State")) == "Running" for d in prefixes), 10, "Running"
        )
        ctx.put("PDIST:Go", 1)
        # frame 0 (current when the devices connected) and the burst: every one taken once
        wait_for(
            lambda: sum(ctx.get(d + "Count") for d in prefixes) == frames + 1,
            20,
            "every frame taken exactly once",
        )
        counts = [int(ctx.get(d + "Count")) for d in prefixes]
        skipped = [int(ctx.get(d + "Skipped")) for d in prefixes]
    # frame 0 (current at connect) went to device 0 only; then each takes every count-th
    expected = [len(range(i, frames + 1, count)) for i in range(count)]
    assert counts == expected, (counts, expected)
    assert skipped == [0] * count


def test_a_collector_merges_distributed_outputs_in_frame_order(
    network, device_process, source_monitor, prefix, ctx
):
    frames = 400
    with PvaSource("PMERGE", network.environ(), rate=400, count=frames, image=(8, 8)):
        truth = source_monitor("PMERGE0000")  # the frames as the source sent them
        devices = [f"{prefix}S{i}:" for i in range(2)]
        for index, device in enumerate(devices):
            config = {
                "inputs": {"img": "PMERGE0000"},
                "processor": {"name": "stats"},
                "distribute": {"index": index, "count": 2},
            }
            device_process("processing", device, config)
        collector = f"{prefix}C:"
        channel = {"pv": devices[0] + "n", "alias": "n", "merge": [devices[1] + "n"]}
        device_process("collector", collector, {"channels": [{**channel, "merge_window": 0.3}]})
        wait_for(lambda: ctx.get(collector + "n:Connected"), 10, "both outputs connected")
        ctx.put(collector + "Start", 1)
        wait_for(lambda: str(ctx.get(collector + "State")) == "Recording", 5, "Recording")
        ctx.put("PMERGE:Go", 1)
        wait_for(
            lambda: sum(ctx.get(d + "Count") for d in devices) >= frames + 1, 20, "every frame"
        )
        # every output arrived and waited out the merge window
        wait_for(lambda: ctx.get(collector + "Count") >= frames, 10, "the merged rows")
        ctx.put(collector + "Stop", 1)
        wait_for(lambda: str(ctx.get(collector + "State")) == "Stopped", 5, "Stopped")
        times = np.asarray(ctx.get(collector + "n:Time"))
    assert np.all(np.diff(times) > 0), "merged rows are not in frame order"
    burst = np.asarray([t for _, t, _ in truth.updates[-frames:]])
    assert len(times) >= frames and len(burst) == frames
    # a stamp passes through a float and back: equal to the microsecond
    assert np.allclose(times[-frames:], burst, rtol=0, atol=1e-6), "a frame missing or misplaced"


def test_feedback_never_writes_a_value_made_from_nan(network, device_process, prefix, ctx):
    # the source's Rate PV (writable, 10.0) stands for a setpoint
    with PvaSource("PNAN", network.environ(), rate=20):
        config = {
            "inputs": {"a": "PNAN0000"},
            "processor": {"name": "calc", "params": {"expression": "sqrt(a - 1000000)"}},
            "feedback": [{"output": "result", "target": "PNAN:Rate", "low": 0, "high": 100}],
        }
        device_process("processing", prefix, config)
        ctx.put("PNAN:Go", 1)  # counters from 1 up: every output is NaN
        ctx.put(prefix + "FeedbackEnable", 1)
        wait_for(lambda: ctx.get(prefix + "FeedbackSkipped") >= 3, 10, "skipped writes")
        skipped = ctx.get(prefix + "FeedbackSkipped")
        message = ctx.get(prefix + "Message")
        rate = ctx.get("PNAN:Rate")
    assert rate == 20.0, "a NaN-derived value (the low limit) was written"
    assert skipped.severity == 1
    # sqrt of a negative number fails the run (as a calc record alarms): no write, counted
    assert "skipped" in message and "invalid value encountered in sqrt" in message
