"""Trigger windows and start/stop conditions against the real sim IOC."""

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from p4p.client.thread import RemoteError
from tests.conftest import wait_published

from epics_collector.process import wait_for, wait_until
from epics_collector.sim import PvaSource

pytestmark = pytest.mark.system


@pytest.fixture
def manual_beam(sim_ioc, ctx) -> Iterator[str]:
    """The sim IOC's BeamOn under the test's control (BeamMode Manual), restored after."""
    p = sim_ioc.prefix
    ctx.put(p + "BeamMode", "Manual")
    ctx.put(p + "BeamOn", 0)
    yield p + "BeamOn"
    ctx.put(p + "BeamMode", "Auto")


def snapshot_rows(ctx, prefix: str) -> Any:
    return ctx.get(prefix + "Snapshots").value


def test_trigger_window_covers_pre_and_post_without_gaps(
    sim_ioc, manual_beam, collector, prefix, ctx
):
    counter = sim_ioc.prefix + "Counter"
    trigger = {"pv": manual_beam, "when": "rising", "pre": 1.0, "post": 1.0}
    collector({"channels": [{"pv": counter, "alias": "c"}], "trigger": trigger})
    assert wait_until(lambda: ctx.get(prefix + "c:Connected"), 10)
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: len(ctx.get(prefix + "c:Time")) >= 15, 5, "more history than pre")
    ctx.put(manual_beam, 1)
    fired = time.time()
    time.sleep(0.4)  # the second trigger comes 0.4 s later, inside the first's post
    ctx.put(manual_beam, 0)
    ctx.put(manual_beam, 1)  # a second trigger inside the first one's post window
    second = time.time()
    assert wait_until(lambda: len(snapshot_rows(ctx, prefix).id) == 2, 5)
    table = snapshot_rows(ctx, prefix)
    assert list(table.id) == [1, 2] and all(table.complete)
    for i, at in ((0, fired), (1, second)):
        t = table.trigger_time[i]
        assert abs(t - at) < 0.2
        times = ctx.get(prefix + f"Snapshot:{i + 1}:c:Time")
        values = ctx.get(prefix + f"Snapshot:{i + 1}:c:Value")
        assert times[0] - (t - 1.0) < 0.15 and (t + 1.0) - times[-1] < 0.15
        assert times[0] >= t - 1.0 and times[-1] <= t + 1.0
        assert np.all(np.diff(values) == 1), "a snapshot has a gap"
        assert table.samples[i] == len(times)
    assert str(ctx.get(prefix + "State")) == "Recording"


def test_manual_trigger_and_refusals(sim_ioc, collector, prefix, ctx):
    quiet = sim_ioc.prefix + "Image:Width"  # never changes: only manual triggers fire
    trigger = {"pv": quiet, "when": "change", "pre": 0.5, "post": 0.2}
    collector({"channels": [sim_ioc.prefix + "Counter"], "trigger": trigger})
    with pytest.raises(RemoteError, match="not recording"):
        ctx.put(prefix + "Trigger", 1)
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: ctx.get(prefix + "Count") >= 8, 5, "more history than pre")
    ctx.put(prefix + "Trigger", 1)
    assert wait_until(lambda: len(snapshot_rows(ctx, prefix).id) == 1, 5)
    alias = sim_ioc.prefix.replace(":", "_") + "Counter"
    assert len(ctx.get(prefix + f"Snapshot:1:{alias}:Value")) >= 5


def test_no_trigger_configured(sim_ioc, collector, prefix, ctx):
    collector({"channels": [sim_ioc.prefix + "Counter"]})
    ctx.put(prefix + "Start", 1)
    with pytest.raises(RemoteError, match="no trigger configured"):
        ctx.put(prefix + "Trigger", 1)


def test_snapshots_persist(sim_ioc, collector, prefix, ctx):
    config = {
        "channels": [{"pv": sim_ioc.prefix + "Counter", "alias": "c"}],
        "trigger": {
            "pv": sim_ioc.prefix + "Image:Width",
            "when": "change",
            "pre": 0.5,
            "post": 0.2,
        },
        "persist": True,
    }
    first = collector(config)
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: ctx.get(prefix + "Count") >= 8, 5, "more history than pre")
    ctx.put(prefix + "Trigger", 1)
    assert wait_until(lambda: len(snapshot_rows(ctx, prefix).id) == 1, 5)
    values = ctx.get(prefix + "Snapshot:1:c:Value")
    first.close()
    other = prefix + "B:"
    collector(config, other)
    assert wait_until(lambda: len(snapshot_rows(ctx, other).id) == 1, 5), ctx.get(other + "Message")
    restored = ctx.get(other + "Snapshot:1:c:Value")
    # p4p 4.3's client caches the last unwrapper per context: after the NTTable get above
    # it may hand back the raw Value of this NTScalarArray
    restored = getattr(restored, "value", restored)
    assert np.array_equal(restored, values)


def test_start_and_stop_when_the_beam_is_on(sim_ioc, manual_beam, collector, prefix, ctx):
    counter = sim_ioc.prefix + "Counter"
    start_when = {"pv": manual_beam, "when": "== 1"}
    collector({"channels": [{"pv": counter, "alias": "c"}], "start_when": start_when})
    assert wait_until(lambda: ctx.get(prefix + "c:Connected"), 10)
    time.sleep(0.5)  # a negative check: the beam is off, nothing may start meanwhile
    assert str(ctx.get(prefix + "State")) == "Idle"
    ctx.put(manual_beam, 1)
    assert wait_until(lambda: str(ctx.get(prefix + "State")) == "Recording", 5)
    wait_for(lambda: len(ctx.get(prefix + "c:Time")) >= 10, 5, "1 s recorded")
    ctx.put(manual_beam, 0)
    assert wait_until(lambda: str(ctx.get(prefix + "State")) == "Stopped", 5)
    assert "start_when == 1" in ctx.get(prefix + "Message")
    wait_published(ctx, prefix, "c")
    assert 10 <= len(ctx.get(prefix + "c:Value")) <= 16


def test_condition_pv_disconnect_is_reported_and_recording_goes_on(
    network, sim_ioc, collector, prefix, ctx
):
    source = prefix + "TRG"
    with PvaSource(source, network.environ(), rate=10):
        trigger = {"pv": source + "0000", "when": "> 100", "pre": 1, "post": 1}
        collector({"channels": [sim_ioc.prefix + "Counter"], "trigger": trigger})
        ctx.put(prefix + "Start", 1)
        wait_for(lambda: ctx.get(prefix + "Count") >= 5, 5, "recording")
    assert wait_until(lambda: "trigger PV" in ctx.get(prefix + "Message"), 10)
    assert "disconnected" in ctx.get(prefix + "Message")
    count = ctx.get(prefix + "Count")
    wait_for(lambda: ctx.get(prefix + "Count") > count, 5, "recording going on")
    assert str(ctx.get(prefix + "State")) == "Recording"
