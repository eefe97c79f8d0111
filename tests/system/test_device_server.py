"""A device served over PVA: normative types, metadata, puts, RPCs, errors."""

import json

import numpy as np
import pytest
from p4p.client.thread import RemoteError
from p4p.nt import NTURI

from epics_collector.core import (
    AttrR,
    AttrRW,
    Bool,
    Device,
    DeviceConfig,
    Enum,
    Float,
    NDArray,
    Severity,
    Status,
    String,
    Table,
    Waveform,
    rpc,
)
from epics_collector.devices.counter import Counter
from epics_collector.process import wait_for

pytestmark = pytest.mark.system


class Everything(Device[DeviceConfig]):
    """One PV of each datatype."""

    level = AttrRW(Float(units="mm", precision=2, low=0, high=5), description="A level")
    flag = AttrRW(Bool(), description="A flag")
    mode = AttrRW(Enum(choices=["Slow", "Fast"]), description="A mode")
    label = AttrRW(String(), description="A label")
    trace = AttrR(Waveform(), description="A trace")
    rows = AttrRW(Table(columns={"time": np.float64, "name": str}), description="Rows")
    image = AttrR(NDArray(dtype=np.uint16), description="An image")

    @rpc()
    async def scale(self, factor: str) -> str:
        """Multiply the level by ``factor``."""
        return str(self.level.value * float(factor))


def test_common_pvs_with_normative_types(serve, prefix, ctx):
    serve(Counter({"step": 3}), prefix)
    state = ctx.get(prefix + "State").raw
    assert state.getID() == "epics:nt/NTEnum:1.0"
    assert list(state.value.choices) == ["Idle", "Running", "Fault"]
    assert ctx.get(prefix + "Message").raw.getID() == "epics:nt/NTScalar:1.0"
    assert json.loads(ctx.get(prefix + "Config")) == {"step": 3}
    assert ctx.get(prefix + "Heartbeat").raw.getID() == "epics:nt/NTScalar:1.0"


def test_heartbeat_increments(serve, prefix, ctx):
    serve(Counter({}), prefix)
    first = ctx.get(prefix + "Heartbeat")
    wait_for(lambda: ctx.get(prefix + "Heartbeat") >= first + 2, 5, "two beats")


def test_command_put_runs_it(serve, prefix, ctx):
    served = serve(Counter({"step": 2}), prefix)
    ctx.put(prefix + "Start", 1)
    assert str(ctx.get(prefix + "State")) == "Running"  # the put returns once it ran
    wait_for(lambda: ctx.get(prefix + "Count") > 0, 5, "counting")
    ctx.put(prefix + "Stop", 1)
    count = ctx.get(prefix + "Count")
    assert count > 0 and count % 2 == 0
    assert served.device.count.value == count


def test_bad_puts_are_refused_clearly_and_device_keeps_serving(serve, prefix, ctx):
    serve(Counter({}), prefix)
    before = ctx.get(prefix + "Message")
    with pytest.raises(RemoteError, match="put to Start refused: 5 is above the upper limit 1"):
        ctx.put(prefix + "Start", 5)
    message = ctx.get(prefix + "Message")  # the caller's own error: not everybody's news
    assert (message + "", message.severity) == (before + "", before.severity)
    assert message.severity == Severity.NO_ALARM
    with pytest.raises(ValueError):  # p4p refuses to convert text to a number client-side
        ctx.put(prefix + "Step", "many")
    with pytest.raises(RemoteError, match="below the lower limit"):
        ctx.put(prefix + "Step", 0)
    with pytest.raises(RemoteError):
        ctx.put(prefix + "Count", 1)  # read-only
    ctx.put(prefix + "Step", 4)
    assert ctx.get(prefix + "Step") == 4
    assert str(ctx.get(prefix + "State")) == "Idle"


def test_every_datatype_is_served(serve, prefix, ctx):
    served = serve(Everything({}), prefix)
    level = ctx.get(prefix + "Level").raw
    assert level.display.units == "mm"
    assert level.display.description == "A level"
    assert (level.control.limitLow, level.control.limitHigh) == (0, 5)
    assert ctx.get(prefix + "Trace").raw.getID() == "epics:nt/NTScalarArray:1.0"
    assert ctx.get(prefix + "Rows").getID() == "epics:nt/NTTable:1.0"
    assert ctx.get(prefix + "Image").attrib is not None  # p4p unwraps NTNDArray only

    ctx.put(prefix + "Mode", "Fast")
    ctx.put(prefix + "Flag", True)
    ctx.put(prefix + "Label", "hello")
    ctx.put(prefix + "Rows", {"value": {"time": [1.0, 2.0], "name": ["a", "b"]}})
    device = served.device
    assert device.pvs["Mode"].value == "Fast"
    assert device.pvs["Flag"].value is True
    assert device.pvs["Label"].value == "hello"
    assert list(device.pvs["Rows"].value["name"]) == ["a", "b"]

    stamp = 1_700_000_000.25
    served.loop.call_soon_threadsafe(
        lambda: device.pvs["Trace"].set(
            [1.0, 2.0], timestamp=stamp, severity=Severity.MAJOR, status=Status.DEVICE
        )
    )
    wait_for(lambda: list(ctx.get(prefix + "Trace")) == [1.0, 2.0], 5, "the new trace")
    trace = ctx.get(prefix + "Trace")
    assert list(trace) == [1.0, 2.0]
    assert trace.timestamp == pytest.approx(stamp)
    assert (trace.severity, trace.raw.alarm.status) == (Severity.MAJOR, Status.DEVICE)

    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    served.loop.call_soon_threadsafe(lambda: device.pvs["Image"].set(image))
    wait_for(lambda: np.array_equal(ctx.get(prefix + "Image"), image), 5, "the new image")


def test_rpc_and_rpc_errors(serve, prefix, ctx):
    served = serve(Everything({}), prefix)
    ctx.put(prefix + "Level", 2.0)
    uri = NTURI([("factor", "s")])
    assert ctx.rpc(prefix + "Scale", uri.wrap(prefix + "Scale", kws={"factor": "1.5"})) == "3.0"
    with pytest.raises(RemoteError, match="Scale failed"):
        ctx.rpc(prefix + "Scale", uri.wrap(prefix + "Scale", kws={"factor": "x"}))
    with pytest.raises(RemoteError, match="bad arguments"):
        ctx.rpc(prefix + "Scale", NTURI([]).wrap(prefix + "Scale", kws={}))
    assert served.device.state.value == "Idle"


def test_the_access_policy_refuses_reads_and_puts(serve, prefix, ctx):
    served = serve(Counter({"access": {"control": ["10.0.0.0/8"]}}), prefix)
    with pytest.raises(RemoteError, match=r"put to Start refused: .*@127.0.0.1 may not control"):
        ctx.put(prefix + "Start", 1)
    assert str(ctx.get(prefix + "State")) == "Idle"  # reading is open by default
    assert ctx.get(prefix + "Refused") == 1 and "may not control" in ctx.get(prefix + "Message")
    other = prefix + "R:"
    closed = serve(Counter({"access": {"read": ["10.0.0.0/8"]}}), other)
    with pytest.raises(TimeoutError):
        ctx.get(other + "State", timeout=1.0)  # no channel for this host
    wait_for(lambda: closed.device.refused.value >= 1, 5, "the refused read counted")
    assert "read of " + other + "State refused" in closed.device.message.value
    assert served.device.refused.value == 1


def test_an_out_of_range_integer_never_wraps_into_a_command(serve, prefix, ctx):
    serve(Counter({}), prefix)
    with pytest.raises(RemoteError, match="above the upper limit 1"):
        ctx.put(prefix + "Start", 2**32 + 1)  # an int32 PV would see 1 and start
    with pytest.raises(RemoteError, match="below the lower limit 0"):
        ctx.put(prefix + "Start", -1)
    with pytest.raises((RemoteError, OverflowError, ValueError)):
        ctx.put(prefix + "Start", 2**64 + 1)  # does not fit the wire: refused, not wrapped
    assert str(ctx.get(prefix + "State")) == "Idle"


def test_an_alarm_posted_once_stays_on_every_later_value(serve, prefix, ctx):
    """An unchanged alarm is not posted again (fewer fields per update), never lost."""
    served = serve(Everything({}), prefix)
    level = served.device.level
    seen = []
    sub = ctx.monitor(prefix + "Level", seen.append)
    wait_for(lambda: len(seen) == 1, 5, "the initial value")

    async def sets() -> None:
        level.set(1.0, severity=Severity.MAJOR, status=Status.RECORD, message="too high")
        level.set(2.0, severity=Severity.MAJOR, status=Status.RECORD, message="too high")
        level.set(3.0, severity=Severity.MAJOR, status=Status.RECORD, message="too high")
        level.set(4.0)

    served.call(sets())
    wait_for(lambda: len(seen) == 5, 5, "four updates")
    alarms = [(float(v), v.severity, v.raw.alarm.message) for v in seen[1:]]
    assert alarms == [
        (1.0, 2, "too high"),
        (2.0, 2, "too high"),
        (3.0, 2, "too high"),
        (4.0, 0, ""),
    ]
    assert [v.timestamp for v in seen[1:]] == sorted(v.timestamp for v in seen[1:])
    sub.close()

    async def again() -> None:
        level.set(5.0, severity=Severity.MINOR, status=Status.DEVICE, message="high")
        level.set(4.5, severity=Severity.MINOR, status=Status.DEVICE, message="high")

    served.call(again())
    later = ctx.get(prefix + "Level")  # a client that comes later: the alarm posted once
    assert (float(later), later.severity, later.raw.alarm.message) == (4.5, 1, "high")
