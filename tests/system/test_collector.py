"""The collector against the real sim IOC: complete, timestamped, robust histories."""

import math
import time

import numpy as np
import pytest
from p4p.client.thread import RemoteError
from tests.conftest import wait_published

from epics_collector.process import ManagedProcess, wait_for, wait_until
from epics_collector.pva import Client
from epics_collector.sim import PvaSource, SimIoc

pytestmark = pytest.mark.system
EPICS_EPOCH = 631152000.0  # 1990-01-01: EPICS time 0 (a record never processed)


def wait_state(ctx, prefix: str, state: str, timeout: float = 10.0) -> None:
    assert wait_until(lambda: str(ctx.get(prefix + "State")) == state, timeout), (
        f"{prefix}State is {ctx.get(prefix + 'State')}, not {state}: {ctx.get(prefix + 'Message')}"
    )


def test_counter_for_5_s_is_complete_with_ioc_timestamps(
    sim_ioc, collector, source_monitor, prefix, ctx
):
    counter = sim_ioc.prefix + "Counter"
    collector({"channels": [{"pv": counter, "alias": "counter"}]})
    truth = source_monitor(counter)
    wait_for(lambda: truth.updates, 5, "the source's first update")
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: ctx.get(prefix + "Count") >= 50, 10, "5 s of a 10 Hz counter")
    ctx.put(prefix + "Stop", 1)
    wait_published(ctx, prefix, "counter")
    values = ctx.get(prefix + "counter:Value")
    times = ctx.get(prefix + "counter:Time")
    assert 50 <= len(values) <= 56
    assert np.all(np.diff(values) == 1), "values are not consecutive integers"
    published = {v: t for v, t, _ in truth.updates}
    assert all(times[i] == published[v] for i, v in enumerate(values)), "timestamps differ"
    assert ctx.get(prefix + "Count") == len(values)
    assert ctx.get(prefix + "Dropped") == 0
    assert str(ctx.get(prefix + "State")) == "Stopped"
    table = ctx.get(prefix + "counter:Table").value
    assert list(table.value) == list(values) and list(table.time) == list(times)


def test_three_channels_of_different_rates(sim_ioc, collector, source_monitor, prefix, ctx):
    p = sim_ioc.prefix
    names = {"counter": p + "Counter", "slow": p + "Slow", "temp": "ca://" + p + "Temperature"}
    collector({"channels": [{"pv": pv, "alias": alias} for alias, pv in names.items()]})
    truths = {alias: source_monitor(pv.removeprefix("ca://")) for alias, pv in names.items()}
    # a processed update of each (a record not processed since the IOC started sends its
    # UDF value at EPICS time 0, which the collector counts in Dropped as bad_time)
    wait_for(
        lambda: all(t.updates and t.updates[-1][1] > EPICS_EPOCH for t in truths.values()),
        5,
        "every source's processed update",
    )
    wait_for(lambda: all(ctx.get(prefix + f"{a}:Connected") for a in names), 5, "connected")
    ctx.put(prefix + "Start", 1)
    started = time.time()
    slow = prefix + "slow:Time"
    wait_for(lambda: len(ctx.get(slow)) >= 3, 10, "3 updates of the 1 Hz source")
    ctx.put(prefix + "Stop", 1)
    stopped = time.time()
    wait_published(ctx, prefix, *names)
    # the test's own monitors lag under load: wait until each has an update past the stop
    wait_for(
        lambda: all(t.updates[-1][1] > stopped for t in truths.values()),
        10,
        "the reference monitors to catch up",
    )
    for alias in names:
        times = ctx.get(prefix + f"{alias}:Time")
        values = ctx.get(prefix + f"{alias}:Value")
        inside = [(v, t) for v, t, _ in truths[alias].updates if started + 0.2 < t < stopped - 0.2]
        recorded = set(zip(values, times, strict=True))
        missing = [u for u in inside if u not in recorded]
        assert inside and not missing, f"{alias}: {len(missing)} of {len(inside)} missing"
    assert ctx.get(prefix + "Dropped") == 0


def test_ioc_restart_marks_a_gap_and_loses_nothing_while_connected(
    network, collector, source_monitor, prefix, ctx
):
    ioc_prefix = prefix + "IOC:"
    counter = ioc_prefix + "Counter"
    ioc_env = network.for_ca_server(1).environ()  # the session's sim IOC has server 0
    ioc = SimIoc(ioc_prefix, ioc_env).start()
    try:
        collector(
            {"channels": [{"pv": counter, "alias": "c"}, {"pv": "ca://" + counter, "alias": "ca"}]}
        )
        assert wait_until(
            lambda: ctx.get(prefix + "c:Connected") and ctx.get(prefix + "ca:Connected"), 10
        )
        ctx.put(prefix + "Start", 1)
        wait_for(lambda: len(ctx.get(prefix + "c:Time")) >= 11, 5, "rows before the restart")
        ioc.stop()
        assert wait_until(lambda: not ctx.get(prefix + "c:Connected"), 15)
        assert wait_until(lambda: not ctx.get(prefix + "ca:Connected"), 15)
        assert "disconnected" in ctx.get(prefix + "Message")
        ioc = SimIoc(ioc_prefix, ioc_env).start()
        assert wait_until(lambda: ctx.get(prefix + "c:Connected"), 15)
        assert wait_until(lambda: ctx.get(prefix + "ca:Connected"), 15)
        rows = len(ctx.get(prefix + "c:Time")) + 11
        wait_for(lambda: len(ctx.get(prefix + "c:Time")) >= rows, 5, "rows after the restart")
        wait_for(lambda: len(ctx.get(prefix + "ca:Time")) >= 23, 5, "CA rows after it")
        ctx.put(prefix + "Stop", 1)
        wait_published(ctx, prefix, "c", "ca")
    finally:
        ioc.stop()
    assert str(ctx.get(prefix + "State")) == "Stopped"
    for alias in ("c", "ca"):
        table = ctx.get(prefix + f"{alias}:Table").value
        # gap rows: INVALID with status CLIENT (the new IOC's first UDF value is INVALID too)
        gaps = np.flatnonzero((table.severity == 3) & (table.status == 7))
        assert len(gaps) == 1, f"{alias}: one gap row expected, got {table.value}"
        gap = int(gaps[0])
        assert math.isnan(table.value[gap])
        before, after = table.value[:gap], table.value[gap + 1 :]
        assert len(before) >= 10 and len(after) >= 10
        assert np.all(np.diff(before) == 1) and np.all(np.diff(after) == 1), alias


def test_missing_pv_is_reported_and_others_record(sim_ioc, collector, prefix, ctx):
    served = collector(
        {"channels": [sim_ioc.prefix + "Counter", prefix + "DoesNotExist"], "connect_timeout": 0.5}
    )
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: "not connected" in ctx.get(prefix + "Message"), 5, "the report")
    missing = prefix.replace(":", "_") + "DoesNotExist"
    assert ctx.get(prefix + f"{missing}:Connected") == 0
    assert str(ctx.get(prefix + "State")) == "Recording"
    counter = prefix + sim_ioc.prefix.replace(":", "_") + "Counter:Value"
    wait_for(lambda: len(ctx.get(counter)) >= 10, 5, "the other channel recording")
    channels = ctx.get(prefix + "Channels").value
    assert list(channels.connected) == [True, False]
    assert served.device.message.reading.severity == 1


def test_bad_puts_lose_nothing(sim_ioc, collector, prefix, ctx):
    collector({"channels": [{"pv": sim_ioc.prefix + "Counter", "alias": "c"}]})
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: ctx.get(prefix + "Count") >= 8, 5, "rows recorded")
    with pytest.raises(RemoteError, match="Start refused: 2 is above the upper limit 1"):
        ctx.put(prefix + "Start", 2)
    with pytest.raises(ValueError):
        ctx.put(prefix + "Start", "garbage")
    with pytest.raises(RemoteError, match="read-only"):
        ctx.put(prefix + "c:Value", [1.0, 2.0])
    ctx.put(prefix + "Stop", 1)
    wait_published(ctx, prefix, "c")
    values = ctx.get(prefix + "c:Value")
    assert len(values) >= 8 and np.all(np.diff(values) == 1)
    assert ctx.get(prefix + "Count") == len(values)


def test_fill_mode_stops_when_full(sim_ioc, collector, prefix, ctx):
    collector(
        {
            "channels": [{"pv": sim_ioc.prefix + "Counter", "alias": "c"}],
            "mode": "fill",
            "capacity": 5,
        }
    )
    ctx.put(prefix + "Start", 1)
    wait_state(ctx, prefix, "Stopped")
    assert "c is full (5 samples, fill mode)" in ctx.get(prefix + "Message")
    wait_published(ctx, prefix, "c")
    assert len(ctx.get(prefix + "c:Value")) == 5
    with pytest.raises(RemoteError, match="Clear first"):
        ctx.put(prefix + "Start", 1)
    ctx.put(prefix + "Clear", 1)
    assert str(ctx.get(prefix + "State")) == "Idle"
    assert ctx.get(prefix + "Count") == 0
    wait_for(lambda: len(ctx.get(prefix + "c:Value")) == 0, 5, "the history emptied")


def test_limits(sim_ioc, collector, prefix, ctx):
    counter = sim_ioc.prefix + "Counter"
    collector({"channels": [{"pv": counter, "alias": "c"}], "limits": {"samples": 7}})
    ctx.put(prefix + "Start", 1)
    wait_state(ctx, prefix, "Stopped")
    wait_published(ctx, prefix, "c")
    assert ctx.get(prefix + "Count") == 7 and len(ctx.get(prefix + "c:Value")) == 7
    other = prefix + "D:"
    collector({"channels": [{"pv": counter, "alias": "c"}], "limits": {"duration": 1.0}}, other)
    ctx.put(other + "Start", 1)
    started = time.monotonic()
    wait_state(ctx, other, "Stopped", 5)
    assert 0.9 < time.monotonic() - started < 2.0
    assert "duration limit reached" in ctx.get(other + "Message")


def test_persisting_collector_survives_sigkill(sim_ioc, network, prefix, ctx, tmp_path):
    config = f'{{"channels": [{{"pv": "{sim_ioc.prefix}Counter", "alias": "c"}}], "persist": true}}'
    args = ["run", "collector", "--prefix", prefix, "--config", config, "--data-dir", str(tmp_path)]

    def start() -> ManagedProcess:
        process = ManagedProcess("epics_collector", args, env=network.environ()).start()
        assert process.wait_notified().startswith("device ready")
        return process

    first = start()
    try:
        ctx.put(prefix + "Start", 1)
        wait_for(lambda: len(ctx.get(prefix + "c:Time")) >= 30, 10, "3 s recorded")
        before = ctx.get(prefix + "c:Time")
        first.popen.kill()
        killed_at = time.time()
        first.popen.wait()
    finally:
        first.stop()
    second = start()
    try:
        with Client(network) as fresh:  # a new client: no reconnect back-off from the kill
            wait_state(fresh, prefix, "Recording")  # it resumes what it was doing
            wait_for(lambda: fresh.get(prefix + "c:Time")[-1] > killed_at + 1, 10, "new rows")
            table = fresh.get(prefix + "c:Table").value
            after = set(table.time)
        assert "reloaded" in second.output()
    finally:
        second.stop()
    flushed = [t for t in before if t < killed_at - 1.0]
    assert len(flushed) >= 15
    assert not [t for t in flushed if t not in after], "rows flushed before the kill are missing"
    # one gap row marks the outage (issue 18, finding 6): after what was on disk, before
    # what came after the restart
    gaps = [i for i, s in enumerate(table.severity) if s == 3 and math.isnan(table.value[i])]
    assert len(gaps) == 1, list(zip(table.time, table.value, table.severity, strict=True))[-30:]
    gap = gaps[0]
    assert table.time[gap - 1] <= killed_at < table.time[gap + 1]
    assert table.status[gap] == 7  # CLIENT, as a disconnect's gap


def test_dropped_stays_zero_under_rated_load(network, collector, prefix, ctx):
    """10 channels at 1 kHz each (10k updates/s, the rated load) for 2 s: all recorded."""
    source = prefix + "SRC"
    with PvaSource(source, network.environ(), channels=10, rate=1000, count=2000) as src:
        names = src.names(10)
        collector({"channels": [{"pv": n, "alias": f"c{i}"} for i, n in enumerate(names)]})
        assert wait_until(lambda: all(ctx.get(prefix + f"c{i}:Connected") for i in range(10)), 10)
        ctx.put(prefix + "Start", 1)
        ctx.put(source + ":Go", 1)
        assert wait_until(lambda: ctx.get(source + ":Posted") == 2000, 15)
        # each channel: its value at Start (0) and the 2000 updates
        assert wait_until(lambda: ctx.get(prefix + "Count") == 10 * 2001, 10), ctx.get(
            prefix + "Count"
        )
        ctx.put(prefix + "Stop", 1)
        assert ctx.get(prefix + "Dropped") == 0
        for i in range(10):
            values = ctx.get(prefix + f"c{i}:Value")
            assert np.array_equal(values, np.arange(0, 2001)), f"c{i} incomplete"


def test_clear_while_flushing_leaves_only_what_came_after(network, device_process, prefix, ctx):
    """Spill writes run in an executor now: a Clear must never be undone by a flush."""
    config = {"channels": [{"pv": "CLRF0000", "alias": "c"}], "persist": True}
    with PvaSource("CLRF", network.environ(), rate=1000):
        ctx.put("CLRF:Go", 1)
        first = device_process("collector", prefix, config)
        ctx.put(prefix + "Start", 1)
        assert wait_until(lambda: ctx.get(prefix + "Count") >= 1500, 10)  # a few flushes
        ctx.put(prefix + "Clear", 1)
        assert wait_until(lambda: ctx.get(prefix + "Count") >= 700, 10)
        ctx.put(prefix + "Stop", 1)
        wait_state(ctx, prefix, "Stopped")
        kept = ctx.get(prefix + "c:Value")
        first.stop()  # a clean stop: the last rows are flushed
        device_process("collector", prefix, config)
        with Client(network) as fresh:  # a new client: no reconnect back-off
            assert wait_until(lambda: len(fresh.get(prefix + "c:Value")) > 0, 10)
            reloaded = fresh.get(prefix + "c:Value")
    assert np.all(np.diff(kept) == 1), "the history after Clear is not contiguous"
    assert list(reloaded) == list(kept), "rows from before the Clear came back from disk"


def test_sources_with_no_declared_kind_are_recorded_as_their_type_says(
    sim_ioc, collector, network, prefix, ctx
):
    """kind auto: a stringout, an mbbo, a waveform and an NTNDArray (PVA and CA).

    Before, a stringout recorded with the default kind (number) dropped every update.
    """
    p = sim_ioc.prefix
    with PvaSource(prefix + "IMG", network.environ(), image=(4, 6), rate=10, count=2):
        collector(
            {
                "channels": [
                    {"pv": p + "Note", "alias": "note"},
                    {"pv": "ca://" + p + "Note", "alias": "ca_note"},
                    {"pv": p + "Shutter", "alias": "shutter"},
                    {"pv": p + "Waveform", "alias": "wave"},
                    {"pv": prefix + "IMG0000", "alias": "img"},
                    {"pv": p + "Note", "alias": "declared", "kind": "number"},
                ],
                "autostart": True,
            }
        )
        expected = ["string", "string", "number", "waveform", "image", "number"]

        def table():
            return ctx.get(prefix + "Channels").value

        wait_for(lambda: list(table()["kind"]) == expected, 20, "the kinds found")
        with Client(network) as client:
            client.put(p + "Note", "beam down")
            client.put(p + "Shutter", 2)
            client.put(prefix + "IMG:Go", 1)
        wait_for(lambda: list(table()["count"][:3]) == [2, 2, 2], 20, "the new values")
        wait_for(lambda: table()["count"][4] >= 2, 20, "two frames")
    assert list(ctx.get(prefix + "note:Value")) == ["ready", "beam down"]
    assert list(ctx.get(prefix + "ca_note:Value")) == ["ready", "beam down"]
    assert list(ctx.get(prefix + "shutter:Value")) == [0.0, 2.0]
    assert np.asarray(ctx.get(prefix + "wave:Value")).shape[1] == 1000
    assert np.asarray(ctx.get(prefix + "img:Frame")).shape == (4, 6)
    dropped = dict(zip(table()["alias"], table()["dropped"], strict=True))
    assert dropped == {"note": 0, "ca_note": 0, "shutter": 0, "wave": 0, "img": 0, "declared": 2}
    message = str(ctx.get(prefix + "Message"))
    assert "declared" in message or int(ctx.get(prefix + "Dropped")) == 2


def test_a_client_of_an_auto_channel_reconnects_to_the_pvs_of_the_kind_found(
    collector, network, prefix, ctx
):
    """Opened before the source's first update, ``s:Value`` is a number's; then a string's."""
    import queue

    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    source = prefix + "SRC"
    collector({"channels": [{"pv": source, "alias": "s"}], "autostart": True})
    seen: queue.Queue = queue.Queue()
    subscription = ctx.monitor(prefix + "s:Value", seen.put, notify_disconnect=True)
    try:
        first = seen.get(timeout=10)
        while isinstance(first, Exception):  # (p4p says "not connected yet" first)
            first = seen.get(timeout=10)
        assert np.asarray(first).dtype == np.float64 and len(first) == 0  # a number's, empty
        pv = SharedPV(nt=NTScalar("s"), initial="hello")
        provider = StaticProvider("late source")
        provider.add(source, pv)
        with Server(providers=[provider], conf=network.server_conf(), useenv=False):
            values: list = []

            def the_string() -> bool:
                values.append(seen.get(timeout=10))
                return not isinstance(values[-1], Exception) and list(values[-1]) == ["hello"]

            wait_for(the_string, 20, "the string PV, after a reconnect")
            assert any(isinstance(v, Exception) for v in values)  # (the number PV closed)
            assert str(ctx.get(prefix + "Channels").value["kind"][0]) == "string"
    finally:
        subscription.close()
