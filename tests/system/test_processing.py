"""The processing device against the real sim IOC and p4p sources."""

import threading
import time
from typing import Any

import numpy as np
import pytest
from p4p.client.thread import RemoteError
from tests.plugins import install_plugin

from epics_collector.process import wait_for, wait_until
from epics_collector.sim import PvaSource

pytestmark = pytest.mark.system


def test_calc_on_two_pvs_for_100_updates(network, processing, prefix, ctx):
    source = prefix + "SRC"
    with PvaSource(source, network.environ(), channels=2, rate=100, count=100):
        processing(
            {
                "inputs": {"a": source + "0000", "b": source + "0001"},
                "trigger": "all",
                "processor": {"name": "calc", "params": {"expression": "a * 2 + b"}},
            }
        )
        seen: list[float] = []
        lock = threading.Lock()

        def on_output(value) -> None:
            with lock:
                seen.append(float(value))

        sub = ctx.monitor(prefix + "result", on_output, request="record[queueSize=1000]field()")
        assert wait_until(lambda: str(ctx.get(prefix + "State")) == "Running", 5)
        # counters with nothing counted yet read 0 with no alarm, not 0 INVALID (UDF)
        for counter in ("Errors", "Skipped", "Overruns", "WorkerRestarts"):
            wait_for(lambda c=counter: ctx.get(prefix + c).severity == 0, 2, f"{counter} defined")
        wait_for(lambda: bool(seen), 5, "the monitor's first value")
        ctx.put(source + ":Go", 1)
        assert wait_until(lambda: 300.0 in seen, 10), seen[-5:]
        sub.close()
    results = [v for v in seen if v > 0]
    assert results == [3.0 * k for k in range(1, 101)], "an output is not a * 2 + b"
    # the initial values (0, 0) and 100 updates; counters are posted at most 10 times a second
    assert wait_until(lambda: ctx.get(prefix + "Count") == 101, 2), ctx.get(prefix + "Count")
    assert ctx.get(prefix + "Errors") == 0


def test_pid_closes_the_loop_on_the_ioc(sim_ioc, processing, prefix, ctx):
    p = sim_ioc.prefix
    ctx.put(p + "Setpoint", 0.0)
    writes: list[float] = []
    sub = ctx.monitor(
        p + "Setpoint", lambda v: writes.append(float(v)), request="record[queueSize=1000]field()"
    )
    wait_for(lambda: writes == [0.0], 5, "the monitor's first value")

    def runs(n: int) -> None:
        """Wait until the loop has run ``n`` more times (a negative check needs runs)."""
        wanted = ctx.get(prefix + "Count") + n
        wait_for(lambda: ctx.get(prefix + "Count") >= wanted, 10, f"{n} more runs")

    pid = {"setpoint": 30.0, "kp": 0.5, "ki": 1.0}
    processing(
        {
            "inputs": {"rb": p + "Readback"},
            "trigger": {"period": 0.1},  # a loop runs on time: Readback posts only changes
            "processor": {"name": "pid", "params": pid},
            "outputs": {"output": {"units": "A"}, "error": {}},
            "feedback": [
                {
                    "output": "output",
                    "target": p + "Setpoint",
                    "low": 0,
                    "high": 32,
                    "max_step": 5,
                    "max_age": 60,
                }
            ],
        }
    )
    runs(10)
    assert max(writes) == 0.0, "no write before FeedbackEnable"
    ctx.put(prefix + "FeedbackEnable", 1)
    # settled: within 0.5 of the setpoint at five readings in a row, 0.1 s apart (the
    # first reading in the band may be an overshoot's way through it)
    streak = [0]

    def in_band() -> bool:
        streak[0] = streak[0] + 1 if abs(ctx.get(p + "Readback") - 30.0) < 0.5 else 0
        return streak[0] >= 5

    settled = wait_until(in_band, 15, interval=0.1)
    assert settled, (ctx.get(p + "Readback"), ctx.get(prefix + "Message"), writes[-3:])
    runs(10)
    assert abs(ctx.get(p + "Readback") - 30.0) < 0.5, "the loop does not hold"
    ctx.put(prefix + "FeedbackEnable", 0)
    count = len(writes)
    runs(10)
    sub.close()
    assert len(writes) == count, "a write after FeedbackEnable 0"
    assert all(0.0 <= w <= 32.0 for w in writes), "a write outside the limits"
    assert all(abs(b - a) <= 5.0 + 1e-9 for a, b in zip(writes, writes[1:], strict=False)), (
        "a step above max_step"
    )


def test_roi_centroid_is_the_spot(sim_ioc, processing, prefix, ctx):
    p = sim_ioc.prefix
    processing(
        {
            "inputs": {"image": p + "Image:ArrayData"},
            "processor": {"name": "roi", "params": {"shape": [96, 128], "background": 40}},
        }
    )

    def on_spot() -> bool:
        x, y = ctx.get(prefix + "centroid_x"), ctx.get(prefix + "centroid_y")
        return (
            abs(x - ctx.get(p + "Image:SpotX")) < 2.0 and abs(y - ctx.get(p + "Image:SpotY")) < 2.0
        )

    wait_for(on_spot, 5, "the centroid on the spot")
    # live: a 24 px wide window starting 2 px right of the spot: the centroid moves into it
    left = int(ctx.get(p + "Image:SpotX")) + 2
    ctx.put(prefix + "Param:width", 24)
    ctx.put(prefix + "Param:x", left)
    wait_for(lambda: left <= ctx.get(prefix + "centroid_x") < left + 24, 5, "centroid in ROI")
    assert ctx.get(prefix + "centroid_x").severity == 0
    with pytest.raises(RemoteError, match="Param:x refused"):
        ctx.put(prefix + "Param:x", -5)


def test_errors_are_alarms_and_fault_after_too_many(sim_ioc, processing, prefix, ctx):
    processing(
        {
            "inputs": {"a": sim_ioc.prefix + "Counter"},
            "processor": {"name": "calc", "params": {"expression": "log(a - a - 1)"}},
            "max_errors": 3,
        }
    )
    assert wait_until(lambda: str(ctx.get(prefix + "State")) == "Fault", 5)
    assert ctx.get(prefix + "Errors") == 3
    assert "3 errors in a row" in ctx.get(prefix + "Message")
    ctx.put(prefix + "Param:expression", "a * 2")
    ctx.put(prefix + "Enable", 1)
    assert wait_until(lambda: ctx.get(prefix + "result") > 0, 5)
    result = ctx.get(prefix + "result")
    assert result.severity == 0 and result % 2 == 0


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("__import__('os')", "Call|only these functions"),
        ("a.real", "Attribute is not allowed"),
        ("a[0]", "Subscript is not allowed"),
        ("b + 1", "unknown name 'b'"),
        ("'x' * 3", "only numbers"),
        ("9**9**8", "cannot be computed"),  # a bignum would hold the GIL for minutes
        ("a + 10^400", "cannot be computed"),
    ],
)
def test_unsafe_expressions_are_refused(sim_ioc, processing, prefix, ctx, expression, error):
    processing(
        {
            "inputs": {"a": sim_ioc.prefix + "Counter"},
            "processor": {"name": "calc", "params": {"expression": "a"}},
        }
    )
    started = time.monotonic()
    with pytest.raises(RemoteError, match=error):
        ctx.put(prefix + "Param:expression", expression)
    assert time.monotonic() - started < 1.0
    assert ctx.get(prefix + "Param:expression") == "a"


def test_inputs_that_never_connect_are_reported(processing, prefix, ctx, monkeypatch):
    monkeypatch.setattr("epics_collector.processing._device.MISSING_GRACE", 0.5)
    processing({"inputs": {"a": prefix + "Nothing"}, "processor": {"name": "stats"}})
    assert wait_until(lambda: "inputs without a value: a" in ctx.get(prefix + "Message"), 5)
    assert str(ctx.get(prefix + "State")) == "Running"


PLUGIN = '''
from epics_collector.processing import Params, Processor


class FlakyParams(Params):
    every: int = 3


class Flaky(Processor[FlakyParams]):
    """Doubles its input; raises on every third call."""

    params_model = FlakyParams
    default_outputs = {"double": "float64"}

    def setup(self):
        self.calls = 0

    def process(self, inputs):
        self.calls += 1
        if self.calls % self.params.every == 0:
            raise RuntimeError(f"call {self.calls} fails")
        return {"double": 2 * inputs["x"].value}
'''


def test_plugin_from_an_entry_point_failing_every_third_call(
    network, processing, prefix, ctx, tmp_path, monkeypatch
):
    install_plugin(tmp_path, monkeypatch, "flaky", PLUGIN, "Flaky")
    source = prefix + "SRC"
    with PvaSource(source, network.environ(), rate=50, count=29):
        processing({"inputs": {"x": source + "0000"}, "processor": {"name": "flaky"}})
        seen: list[tuple[float, int]] = []
        sub = ctx.monitor(
            prefix + "double",
            lambda v: seen.append((float(v), v.severity)),
            request="record[queueSize=1000]field()",
        )
        assert wait_until(lambda: ctx.get(prefix + "Count") == 1, 5)  # the initial value
        ctx.put(source + ":Go", 1)
        assert wait_until(lambda: ctx.get(prefix + "Count") + ctx.get(prefix + "Errors") == 30, 10)
        sub.close()
    assert ctx.get(prefix + "Errors") == 10 and ctx.get(prefix + "Count") == 20
    assert str(ctx.get(prefix + "State")) == "Running"
    assert "flaky failed: RuntimeError: call" in ctx.get(prefix + "Message")
    severities = [s for _, s in seen]
    assert 2 in severities and 0 in severities  # errors set MAJOR, good runs clear it
    good = [v for v, s in seen if s == 0 and v > 0]
    assert all(v % 2 == 0 for v in good) and len(good) >= 15


SLOW = """
import time

from epics_collector.processing import Params, Processor


class SlowParams(Params):
    seconds: float = 0.0


class Slow(Processor[SlowParams]):
    params_model = SlowParams
    default_outputs = {"out": "float64"}

    def process(self, inputs):
        time.sleep(self.params.seconds)
        return {"out": inputs["x"].value}
"""


def test_a_hanging_processor_is_reported_by_the_timeout(
    sim_ioc, processing, prefix, ctx, tmp_path, monkeypatch
):
    install_plugin(tmp_path, monkeypatch, "slow", SLOW, "Slow")
    processing(
        {
            "inputs": {"x": sim_ioc.prefix + "Counter"},
            "processor": {"name": "slow", "params": {"seconds": 0.0}},
            "timeout": 0.3,
        }
    )
    assert wait_until(lambda: ctx.get(prefix + "Count") > 2, 5)
    ctx.put(prefix + "Param:seconds", 0.6)
    assert wait_until(lambda: "longer than timeout (0.3 s)" in ctx.get(prefix + "Message"), 5)
    assert ctx.get(prefix + "Errors") >= 1 and ctx.get(prefix + "out").severity == 2
    ctx.put(prefix + "Param:seconds", 0.0)
    errors = ctx.get(prefix + "Errors")
    count = ctx.get(prefix + "Count")
    assert wait_until(lambda: ctx.get(prefix + "Count") > count + 3, 5)
    assert ctx.get(prefix + "Errors") <= errors + 1
    assert ctx.get(prefix + "DurationMax") >= 0.3  # ended at the timeout: killed, replaced
    assert ctx.get(prefix + "WorkerRestarts") >= 1


def test_feedback_never_acts_on_a_nan_or_invalid_input(network, processing, prefix, ctx):
    """pid turns a NaN into its own low limit; feedback must not write that (finding 10)."""
    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    measured = SharedPV(nt=NTScalar("d"), initial=1.0)
    writes: list[float] = []

    class Target:
        def put(self, pv, op):
            writes.append(float(op.value()))
            pv.post(op.value())
            op.done()

    target = SharedPV(nt=NTScalar("d"), initial=10.0, handler=Target())
    provider = StaticProvider("feedback-test")
    provider.add(prefix + "measured", measured)
    provider.add(prefix + "target", target)
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        measured.post(1.0, timestamp=time.time())  # a fresh measurement
        processing(
            {
                "inputs": {"m": prefix + "measured"},
                "trigger": {"period": 0.1},
                "processor": {
                    "name": "pid",
                    "params": {"setpoint": 30.0, "kp": 0.5, "low": 5, "high": 40},
                },
                "feedback": [
                    {
                        "output": "output",
                        "target": prefix + "target",
                        "low": 5,
                        "high": 40,
                        "max_age": 60,
                    }
                ],
            },
            device_prefix=prefix + "PID:",
        )
        pid = prefix + "PID:"
        ctx.put(pid + "FeedbackEnable", 1)
        wait_for(lambda: len(writes) >= 3, 10, "feedback writes from a finite input")
        for bad in (
            {"value": float("nan")},
            {"value": float("inf")},
            {"value": 20.0, "alarm.severity": 3},
        ):
            skipped = int(ctx.get(pid + "FeedbackSkipped"))
            measured.post(
                bad["value"], severity=bad.get("alarm.severity", 0), timestamp=time.time()
            )
            wait_for(lambda: int(ctx.get(pid + "FeedbackSkipped")) >= skipped + 3, 10, "skips")  # noqa: B023
            before = len(writes)
            wait_for(lambda: int(ctx.get(pid + "FeedbackSkipped")) >= skipped + 8, 10, "more skips")  # noqa: B023
            assert len(writes) == before, f"a write on input {bad}: {writes[before:]}"
            message = ctx.get(pid + "Message")
            assert "suspended" in message and message.severity == 2
            measured.post(1.0, severity=0, timestamp=time.time())
            wait_for(lambda: len(writes) > before, 10, "writes again on a finite input")  # noqa: B023


def test_feedback_at_a_limit_says_it_is_clamped(network, processing, prefix, ctx):
    """Walkthrough 3, finding 15: a setpoint sat at its limit and nothing said so."""
    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    wanted = SharedPV(nt=NTScalar("d"), initial=10.0)
    target = SharedPV(nt=NTScalar("d"), initial=0.0)

    @target.put
    def _written(pv: Any, op: Any) -> None:
        pv.post(op.value(), timestamp=time.time())
        op.done()

    provider = StaticProvider("clamp-test")
    provider.add(prefix + "wanted", wanted)
    provider.add(prefix + "target", target)
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        wanted.post(10.0, timestamp=time.time())
        device = prefix + "FB:"
        feedback = {"output": "result", "target": prefix + "target", "low": 0, "high": 50}
        processing(
            {
                "inputs": {"a": prefix + "wanted"},
                "trigger": {"period": 0.1},
                "processor": {"name": "calc", "params": {"expression": "a"}},
                "feedback": [{**feedback, "max_age": 60}],
            },
            device_prefix=device,
        )
        ctx.put(device + "FeedbackEnable", 1)
        wait_for(lambda: float(ctx.get(prefix + "target")) == 10.0, 10, "a write within limits")
        wanted.post(80.0, timestamp=time.time())
        wait_for(lambda: float(ctx.get(prefix + "target")) == 50.0, 10, "the write at its limit")
        message = ctx.get(device + "Message")
        assert "clamped" in message and "asks 80" in message and "high 50" in message, message
        assert message.severity == 1
        wanted.post(20.0, timestamp=time.time())
        wait_for(lambda: float(ctx.get(prefix + "target")) == 20.0, 10, "within limits again")
        wait_for(lambda: "within its limits again" in ctx.get(device + "Message"), 10, "said")


GREEDY = """
import re

from epics_collector.processing import Params, Processor


class GreedyParams(Params):
    evil: int = 0


class Greedy(Processor[GreedyParams]):
    params_model = GreedyParams
    default_outputs = {"out": "float64"}

    def process(self, inputs):
        if self.params.evil:  # catastrophic backtracking: minutes in C, the GIL held
            re.match(r"(a+)+$", "a" * 64 + "b")
        return {"out": inputs["x"].value}
"""


def test_a_processor_holding_the_gil_is_killed_and_the_device_keeps_serving(
    sim_ioc, processing, prefix, ctx, tmp_path, monkeypatch
):
    """Finding 9: the processor runs in a worker process that can be killed."""
    install_plugin(tmp_path, monkeypatch, "greedy", GREEDY, "Greedy")
    processing(
        {
            "inputs": {"x": sim_ioc.prefix + "Counter"},
            "processor": {"name": "greedy"},
            "timeout": 1.0,
        }
    )
    assert wait_until(lambda: ctx.get(prefix + "Count") > 2, 10)
    beats: list[float] = []
    sub = ctx.monitor(prefix + "Heartbeat", lambda _: beats.append(time.monotonic()))
    last = float(ctx.get(prefix + "out"))
    ctx.put(prefix + "Param:evil", 1)
    wait_for(
        lambda: "longer than timeout (1.0 s)" in ctx.get(prefix + "Message"), 15, "the timeout"
    )
    assert ctx.get(prefix + "WorkerRestarts") >= 1
    out = ctx.get(prefix + "out")
    assert out.severity == 2 and float(out) >= last  # the last output kept, with an alarm
    assert ctx.get(prefix + "WorkerRestarts").severity == 2
    ctx.put(prefix + "Param:evil", 0)
    count = ctx.get(prefix + "Count")
    wait_for(lambda: ctx.get(prefix + "Count") > count + 3, 15, "runs again")
    sub.close()
    gaps = np.diff(beats)
    assert len(beats) >= 3 and gaps.max() < 2.0, f"Heartbeat stalled {gaps.max():.1f} s"
    assert ctx.get(prefix + "out").severity == 0
