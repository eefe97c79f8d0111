"""Bursts into a collector: every update is recorded, or its loss is counted (never neither)."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest
from p4p import Value
from p4p.client.thread import Context

from epics_collector.process import wait_for
from epics_collector.sim import PvaSource
from epics_collector.sources import EpicsSources

pytestmark = pytest.mark.system


class Reader:
    """Plain values of PVs, read without p4p's unwrapping.

    One p4p context unwraps every channel with one cached wrapper; after an NTTable it
    hands back NTScalars as raw Values (p4p 4.3), so these tests read the fields
    themselves.
    """

    def __init__(self, network: Any) -> None:
        self.context = Context("pva", conf=network.client_conf(), useenv=False, nt=False)

    def get(self, name: str) -> Any:
        """The ``value`` field (an NTTable's columns as a dict of arrays)."""
        value = cast(Any, self.context.get(name))["value"]
        if isinstance(value, Value) and "index" in value:  # NTEnum
            return value["index"]
        if isinstance(value, Value):  # NTTable
            return {key: np.asarray(value[key]) for key in value.keys()}
        return value

    def severity(self, name: str) -> int:
        return int(cast(Any, self.context.get(name))["alarm.severity"])

    def put(self, name: str, value: Any) -> None:
        self.context.put(name, {"value": value})

    def state(self, prefix: str) -> str:
        value = cast(Any, self.context.get(prefix + "State"))["value"]
        return value["choices"][value["index"]]


@pytest.fixture
def ctx(network: Any) -> Any:
    """This module's reader (shadows the unwrapping ``ctx``)."""
    reader = Reader(network)
    yield reader
    reader.context.close()


def source(network: Any, prefix: str, count: int, **options: Any) -> PvaSource:
    """A p4p source posting ``count`` updates flat out on each Go."""
    return PvaSource(prefix, network.environ(), rate=0, count=count, **options)


def go(ctx: Any, source_prefix: str) -> None:
    """Start a burst of the source under ``source_prefix``."""
    ctx.put(source_prefix + ":Go", 1)


def start_recording(ctx: Any, prefix: str, aliases: list[str]) -> None:
    wait_for(lambda: all(ctx.get(f"{prefix}{a}:Connected") for a in aliases), 10, "connections")
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: ctx.state(prefix) == "Recording", 5, "Recording")


def recorded_through(ctx: Any, prefix: str, alias: str, last: float) -> np.ndarray:
    """The channel's values once its newest is ``last`` and Count includes it.

    The newest update of a burst always arrives (a squash keeps the newest), so this
    waits on the condition, not on a guessed time.
    """

    def done() -> bool:
        values = ctx.get(f"{prefix}{alias}:Value")
        return len(values) > 0 and values[-1] == last

    wait_for(done, 60, f"{alias} to record its update {last}")
    values = np.asarray(ctx.get(f"{prefix}{alias}:Value"))

    def counted() -> bool:
        channels = ctx.get(prefix + "Channels")
        row = list(channels["alias"]).index(alias)
        return channels["count"][row] >= len(values) and ctx.get(prefix + "Count") >= len(values)

    wait_for(counted, 5, "Count and Channels to catch up")
    return values


def channel_losses(ctx: Any, prefix: str, alias: str) -> tuple[int, int]:
    """(overruns, dropped) of one channel from the Channels table."""
    channels = ctx.get(prefix + "Channels")
    row = list(channels["alias"]).index(alias)
    return int(channels["overruns"][row]), int(channels["dropped"][row])


def test_a_source_faster_than_the_queue_is_counted(network, device_process, prefix, ctx):
    count = 20_000
    with source(network, "QLOSS", count):
        device_process(
            "collector",
            prefix,
            {"channels": [{"pv": "QLOSS0000", "alias": "fast"}], "queue_size": 100},
        )
        start_recording(ctx, prefix, ["fast"])
        go(ctx, "QLOSS")
        values = recorded_through(ctx, prefix, "fast", float(count))
        wait_for(lambda: channel_losses(ctx, prefix, "fast")[0] > 0, 5, "Channels to publish")
        overruns, dropped = channel_losses(ctx, prefix, "fast")
        message = ctx.get(prefix + "Message")
        overruns_pv, severity = ctx.get(prefix + "Overruns"), ctx.severity(prefix + "Overruns")
    assert np.all(np.diff(values) > 0), "the history is not in source order"
    missing = count - int(np.count_nonzero(values >= 1))
    assert missing > 0, "a queue of 100 kept a flat-out burst of 20,000: the test proves nothing"
    # what is missing shows in Overruns or Dropped, never neither
    assert overruns > 0 or dropped > 0
    assert overruns > 0, "a full queue squashes silently unless the drain reports it"
    assert overruns_pv == overruns
    assert severity == 1, "Overruns > 0 carries a MINOR alarm"
    assert "fast" in message and "queue_size" in message


def test_three_bursts_of_30000_are_kept_whole_with_defaults(network, device_process, prefix, ctx):
    count = 30_000
    with source(network, "WHOLE", count):
        device_process("collector", prefix, {"channels": [{"pv": "WHOLE0000", "alias": "c"}]})
        start_recording(ctx, prefix, ["c"])
        for burst in range(1, 4):
            go(ctx, "WHOLE")
            values = recorded_through(ctx, prefix, "c", float(count))
            fresh = values[-count:]
            assert np.array_equal(fresh, np.arange(1, count + 1)), f"burst {burst} is not whole"
            assert channel_losses(ctx, prefix, "c") == (0, 0)
            rows = len(values)
            wait_for(lambda: ctx.get(prefix + "Count") == rows, 5, f"Count after burst {burst}")  # noqa: B023
            assert int(ctx.get(prefix + "Dropped")) == 0
            assert int(ctx.get(prefix + "Overruns")) == 0
            ctx.put(prefix + "Clear", 1)
            wait_for(lambda: ctx.get(prefix + "Count") == 0, 5, "Clear")


def test_three_bursts_at_once_into_three_channels_count_what_is_missing(
    network, device_process, prefix, ctx
):
    count, names = 30_000, ["TRIA", "TRIB", "TRIC"]
    sources = [source(network, name, count).start() for name in names]
    try:
        channels = [{"pv": f"{name}0000", "alias": name.lower()} for name in names]
        device_process("collector", prefix, {"channels": channels})
        start_recording(ctx, prefix, [c["alias"] for c in channels])
        for name in names:
            go(ctx, name)
        for channel in channels:
            alias = channel["alias"]
            values = recorded_through(ctx, prefix, alias, float(count))
            missing = count - int(np.count_nonzero(values >= 1))
            overruns, dropped = channel_losses(ctx, prefix, alias)
            assert missing == 0 or overruns > 0 or dropped > 0, (
                f"{alias}: {missing} updates missing, none counted"
            )
            assert np.all(np.diff(values) > 0)
    finally:
        for src in sources:
            src.stop()


def test_gaps_in_image_unique_ids_are_counted_exactly(network, device_process, prefix, ctx):
    frames = 2000
    with source(network, "GAPS", frames, image=(16, 16)):
        config = {
            "channels": [{"pv": "GAPS0000", "alias": "img", "kind": "image"}],
            "queue_size": 2,
            "capacity": frames + 10,
        }
        device_process("collector", prefix, config)
        start_recording(ctx, prefix, ["img"])
        wait_for(lambda: ctx.get(prefix + "Count") == 1, 5, "the frame current at Start")
        go(ctx, "GAPS")

        def settled() -> bool:
            count = int(ctx.get(prefix + "Count"))
            return count + int(ctx.get(prefix + "Dropped")) >= frames + 1

        # the newest frame always arrives; Count and Dropped then account for every frame
        wait_for(settled, 60, "Count + Dropped to account for the burst")
        rows, dropped = int(ctx.get(prefix + "Count")), int(ctx.get(prefix + "Dropped"))
    assert dropped > 0, "a queue of 2 kept 2,000 frames flat out: the test proves nothing"
    assert rows + dropped == frames + 1, (rows, dropped)


class Faulty:
    """A source listener whose handling raises on every update (a bug in a device)."""

    def on_update(self, update: Any) -> None:
        raise OverflowError("a bug while recording")

    def on_connection(self, connected: bool, reason: str) -> None:
        self.reason = reason

    def on_loss(self, missing: int | None) -> None:
        """Nothing to count."""


class Counting(Faulty):
    """A listener that counts the updates it gets."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def on_update(self, update: Any) -> None:
        self.values.append(update.value)


def test_the_drain_thread_survives_a_listener_that_raises(network, caplog):
    """Issue 18, finding 1: one exception on the one drain thread stopped every source."""
    count = 100
    sources = EpicsSources(network)
    try:
        with source(network, "SURV", count):
            faulty, good = Faulty(), Counting()
            sources.subscribe("SURV0000", faulty, queue_size=1000)
            sources.subscribe("SURV0000", good, queue_size=1000)
            wait_for(lambda: len(good.values) >= 1, 10, "the current value")
            with Context("pva", conf=network.client_conf(), useenv=False) as ctx:
                ctx.put("SURV:Go", 1)
            wait_for(lambda: count in good.values, 30, "the burst to reach the good listener")
    finally:
        sources.close()
    assert good.values[-count:] == [float(v) for v in range(1, count + 1)]
    assert "recording its updates failed" in faulty.reason and "OverflowError" in faulty.reason
    assert sum("handling an update failed" in r.message for r in caplog.records) == 1


def test_an_undecodable_source_is_reported_once(network, collector, prefix, ctx, caplog):
    """A source without a value field: not connected, said once, not per update."""
    from p4p import Type
    from p4p import Value as PvaValue
    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    shape = Type([("x", "d")])
    odd = SharedPV(initial=PvaValue(shape, {"x": 0.0}))
    marker = SharedPV(nt=NTScalar("d"), initial=0.0)
    provider = StaticProvider("undecodable")
    provider.add(prefix + "ODD", odd)
    provider.add(prefix + "MARK", marker)
    channels = [{"pv": prefix + "ODD", "alias": "odd"}, {"pv": prefix + "MARK", "alias": "mark"}]

    def reports() -> list[str]:
        return [r.getMessage() for r in caplog.records if "cannot decode" in r.getMessage()]

    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        collector({"channels": channels})
        wait_for(lambda: ctx.get(prefix + "mark:Connected") == 1, 10, "the marker")
        ctx.put(prefix + "Start", 1)
        for x in range(1, 6):
            odd.post(PvaValue(shape, {"x": float(x)}))
        marker.post(1.0)  # drained after the odd updates: when it is recorded, they were seen
        wait_for(lambda: 1.0 in list(ctx.get(prefix + "mark:Value")), 10, "the marker")
        assert ctx.get(prefix + "odd:Connected") == 0
    assert len(reports()) == 1, reports()
