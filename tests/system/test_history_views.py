"""Query, Tail and View over PVAccess, checked against numpy on the same rows."""

from __future__ import annotations

import datetime
import json

import numpy as np
import pytest
from p4p.client.thread import RemoteError
from tests.conftest import call_table, cli, wait_published

from epics_collector.client import Binned, Collector, DeviceError, History
from epics_collector.core import Update
from epics_collector.process import wait_for

pytestmark = pytest.mark.system
N = 20_000
T0 = 1.7e9  # POSIX seconds of the first row


@pytest.fixture
def filled(collector, prefix):
    """A collector whose pushed channel ``p`` holds N rows: times T0 + i/100, a sine, gaps."""
    served = collector({"channels": [f"{prefix}never"], "capacity": N + 10, "tail": 50})
    device = served.device
    served.call(device.call("Push", {"channel": "p", "value": "0", "time": str(T0 - 1)}))
    channel = next(c for c in device.recorder.channels if c.alias == "p")
    times = T0 + np.arange(N) / 100
    values = np.sin(np.arange(N) / 50) * 10
    values[[5, 500, 7000]] = np.nan  # gap rows
    for t, v in zip(times, values, strict=True):
        device.recorder.push(channel, Update(float(v), float(t), 0, 0))
    return served, times, values


def test_query_operators_match_numpy(filled, raw, prefix) -> None:
    served, times, values = filled
    start, end, points = T0 + 10, T0 + 150, 70
    edges = np.linspace(start, end, points + 1)
    got = call_table(
        raw, prefix + "Query", alias="p", start=start, end=end, points=points, operator="minmax"
    )
    assert len(got["time"]) == points
    for b in range(points):
        upper = times <= edges[b + 1] if b == points - 1 else times < edges[b + 1]
        inside = values[(times >= edges[b]) & upper]
        valid = inside[~np.isnan(inside)]
        assert got["min"][b] == valid.min() and got["max"][b] == valid.max()
        assert got["count"][b] == len(valid)
        assert abs(got["value"][b] - valid.mean()) <= 1e-12 * max(1.0, abs(valid.mean()))
    first = call_table(
        raw, prefix + "Query", alias="p", start=start, end=end, points=points, operator="first"
    )
    assert first["time"][0] == times[times >= start][0]
    count = call_table(
        raw, prefix + "Query", alias="p", start=start, end=end, points=1, operator="count"
    )
    assert int(count["value"][0]) == int(((times >= start) & (times <= end)).sum())
    rows = call_table(raw, prefix + "Query", alias="p", start=T0, end=T0 + 0.05, operator="raw")
    np.testing.assert_array_equal(rows["time"], times[:6])
    np.testing.assert_array_equal(rows["value"], values[:6])  # the NaN row too
    whole = call_table(raw, prefix + "Query", alias="p", points=1, operator="count")  # defaults
    assert int(whole["value"][0]) == N + 1  # the first push (at T0 - 1) too


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"alias": "nope"}, "no channel 'nope'"),
        ({"alias": "p", "operator": "median"}, "unknown operator 'median'"),
        ({"alias": "p", "start": "2", "end": "1"}, "start 2.0 is after end 1.0"),
        ({"alias": "p", "points": "0"}, "points must be 1..100000"),
        ({"alias": "p", "points": "100001"}, "points must be 1..100000"),
        ({"alias": "p", "points": "many"}, "points must be an integer"),
        ({"alias": "p", "start": "nan"}, "start must be a finite number"),
        ({"alias": "p", "end": "yesterday"}, "end must be a number"),
        ({"alias": "p", "operator": "raw", "points": "10"}, "exceed points=10"),
        ({"alias": "p", "snapshot": "3"}, "no snapshot '3'"),
        ({"alias": "p", "colour": "red"}, "bad arguments"),
    ],
)
def test_bad_queries_get_a_clear_error_and_the_device_keeps_serving(
    filled, raw, ctx, prefix, arguments: dict[str, str], error: str
) -> None:
    with pytest.raises(RemoteError, match=error):
        call_table(raw, prefix + "Query", **arguments)
    assert str(ctx.get(prefix + "State")) in ("Idle", "Recording", "Stopped")


def test_tail_holds_the_newest_rows(filled, ctx, prefix) -> None:
    _, times, values = filled
    tail = ctx.get(prefix + "p:Tail").value
    assert len(tail.time) == 50  # config tail: 50
    np.testing.assert_array_equal(tail.time, times[-50:])
    assert tail.value[-1] == values[-1]


def test_view_pvs_follow_puts_and_a_growing_history(filled, ctx, prefix) -> None:
    served, times, values = filled
    seen: list[np.ndarray] = []
    sub = ctx.monitor(prefix + "p:View:Max", lambda v: seen.append(np.asarray(v)))
    try:
        # 1000 bins over the whole history; the empty ones between T0 - 1 and T0 left out
        every = np.concatenate(([T0 - 1], times))
        bins = np.count_nonzero(np.histogram(every, 1000, (every[0], every[-1]))[0])
        assert bins < 1000
        wait_for(lambda: bool(seen) and len(seen[-1]) == bins, 10, "the default view")
        ctx.put(prefix + "p:View:Points", 10)
        ctx.put(prefix + "p:View:Start", T0)
        ctx.put(prefix + "p:View:End", T0 + 100)
        inside = values[(times >= T0) & (times < T0 + 10)]  # the first of 10 bins
        wait_for(
            lambda: len(seen[-1]) == 10 and seen[-1][0] == np.nanmax(inside), 5, "a 10-bin view"
        )
        ctx.put(prefix + "p:View:Operator", "mean")
        mean = ctx.get(prefix + "p:View:Value")
        wait_for(
            lambda: abs(ctx.get(prefix + "p:View:Value")[0] - np.nanmean(inside)) < 1e-9,
            5,
            "the mean view",
        )
        ctx.put(prefix + "p:View:End", 0.0)  # follow the recording
        before = float(ctx.get(prefix + "p:View:Time")[-1])
        channel = next(c for c in served.device.recorder.channels if c.alias == "p")
        served.device.recorder.push(channel, Update(1.0, float(times[-1]) + 100, 0, 0))
        wait_for(lambda: float(ctx.get(prefix + "p:View:Time")[-1]) > before, 5, "the view grew")
        assert len(mean) == 10
    finally:
        sub.close()


def test_query_a_snapshot(collector, sim_ioc, raw, ctx, prefix) -> None:
    counter = sim_ioc.prefix + "Counter"
    config = {
        "channels": [{"pv": counter, "alias": "n"}],
        "trigger": {"pv": sim_ioc.prefix + "BeamOn", "when": "rising", "pre": 0.5, "post": 0.3},
        "autostart": True,
    }
    collector(config)
    wait_for(lambda: ctx.get(prefix + "Count") >= 10, 10, "some counts")
    ctx.put(prefix + "Trigger", 1)
    wait_for(lambda: len(ctx.get(prefix + "Snapshots").value.id) >= 1, 10, "a snapshot")
    snapshot = int(ctx.get(prefix + "Snapshots").value.id[0])
    frozen = ctx.get(f"{prefix}Snapshot:{snapshot}:n:Value")
    rows = call_table(raw, prefix + "Query", alias="n", snapshot=snapshot, operator="raw")
    np.testing.assert_array_equal(rows["value"], frozen)
    minmax = call_table(raw, prefix + "Query", alias="n", snapshot=snapshot, points=1)
    assert minmax["min"][0] == min(frozen) and minmax["max"][0] == max(frozen)


def test_the_python_client_and_the_cli_read_views(filled, ctx, prefix) -> None:
    _, times, values = filled
    wait_published(ctx, prefix, "p")  # the client finds channels in the Channels table
    with Collector.connect(prefix) as col:
        whole = col.history("p")
        assert isinstance(whole, History) and len(whole.time) == N + 1
        binned = col.history("p", start=T0, end=T0 + 100, points=10)
        assert isinstance(binned, Binned) and binned.max is not None and binned.count is not None
        inside = values[(times >= T0) & (times < T0 + 10)]
        assert binned.max[0] == np.nanmax(inside) and binned.count[0] == np.count_nonzero(
            ~np.isnan(inside)
        )
        moment = datetime.datetime.fromtimestamp(T0, datetime.UTC)
        rows = col.history("p", start=moment, end=T0 + 0.02, operator="raw")
        assert isinstance(rows, History) and list(rows.time) == list(times[:3])
        with pytest.raises(DeviceError, match="unknown operator 'avg'"):
            col.history("p", operator="avg")
    start = datetime.datetime.fromtimestamp(T0, datetime.UTC).isoformat()
    result = cli(
        "history", prefix, "p", "--start", start, "--end", str(T0 + 100), "--points", "10", "--json"
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert len(shown) == 10 and shown[0]["max"] == np.nanmax(inside)
    assert set(shown[0]) == {"time", "value", "min", "max", "count"}
    result = cli("history", prefix, "p", "--operator", "median")
    assert result.returncode == 1 and "unknown operator 'median'" in result.stderr
    result = cli("history", prefix, "p", "--start", "last tuesday")
    assert result.returncode == 2 and "POSIX seconds or an ISO 8601 time" in result.stderr


def test_an_ophyd_async_view_reads_a_range(filled, prefix) -> None:
    pytest.importorskip("ophyd_async")
    import asyncio

    from epics_collector.ophyd import CollectorDevice, HistoryView

    _, times, values = filled

    async def read() -> tuple[np.ndarray, np.ndarray]:
        assert isinstance(CollectorDevice(prefix, name="col").view("p"), HistoryView)
        view = HistoryView(prefix, "p", name="view")
        await view.connect(timeout=10)
        await view.points.set(10)
        await view.start.set(T0)
        await view.end.set(T0 + 100)
        await view.operator.set("max")
        reading = await view.read()
        assert set(reading) == {"view-time", "view-value", "view-min", "view-max"}
        return reading["view-time"]["value"], reading["view-value"]["value"]

    time_, value = asyncio.run(read())
    inside = values[(times >= T0) & (times < T0 + 10)]
    assert len(time_) == 10 and value[0] == np.nanmax(inside)
