"""Many channels (issue 22): 100,000 channels start, record, serve and export; big configs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import psutil
import pytest

from epics_collector.collector import CollectorConfig
from epics_collector.core import validate_config
from epics_collector.process import DeviceProcess, wait_for
from epics_collector.pva import Network
from epics_collector.sim import PvaSource

pytestmark = [pytest.mark.system, pytest.mark.load]

IDLE_SERVERS, PER_SERVER = 4, 24_975  # idle channels: 99,900
SAMPLE, BURST = 100, 1000  # channels that post a burst, updates each
CAPACITY = 100


@pytest.fixture
def big_sources(network: Network):
    """Four p4p servers of idle counters and one whose 100 counters post a burst."""
    env = network.environ()
    started: list[PvaSource] = []
    try:
        for k in range(IDLE_SERVERS):
            started.append(
                PvaSource(f"IDLE{k}:", env, channels=PER_SERVER, count=1, timeout=120).start()
            )
        started.append(PvaSource("BURST:", env, channels=SAMPLE, rate=0, count=BURST).start())
        yield started
    finally:
        for source in started:
            source.stop()


@pytest.mark.timeout(360)
def test_a_100k_channel_collector_starts_records_serves_and_exports(
    network: Network, big_sources: list[PvaSource], ctx, tmp_path: Path
) -> None:
    names = [n for s in big_sources[:IDLE_SERVERS] for n in s.names(PER_SERVER)]
    sample = big_sources[-1].names(SAMPLE)
    aliased = ({"pv": pv, "alias": f"s{i}"} for i, pv in enumerate(sample))
    channels: list[object] = [*names, *aliased]
    assert len(channels) == 100_000
    config = {"channels": channels, "capacity": CAPACITY, "connect_timeout": 120}
    data = tmp_path / "data"
    with DeviceProcess(
        "collector", "BIG:", config, env=network.environ(), data_dir=data, timeout=120
    ) as device:
        table = lambda: ctx.get("BIG:Channels", timeout=30).value  # noqa: E731
        try:
            wait_for(lambda: bool(np.all(table().connected)), 180, "100,000 channels connected")
        except TimeoutError as error:
            raise AssertionError(f"{np.sum(table().connected)} connected: {error}") from None
        rows = table()
        assert len(rows.alias) == 100_000 and rows.alias[-1] == "s99"
        # the Config PV: valid, and the same configuration once validated again
        served = json.loads(ctx.get("BIG:Config", timeout=30))
        got = validate_config(CollectorConfig, served).model_dump()
        assert got == validate_config(CollectorConfig, config).model_dump()
        rss = psutil.Process(device.process.pid).memory_info().rss
        # generous (the benchmark measures): rows 1.8 KB + p4p's monitor 11 KB + ours ~5 KB
        assert rss / 100_000 < 40_000, f"{rss / 1e6:.0f} MB resident for 100,000 channels"

        ctx.put("BIG:Start", 1, timeout=60)  # Start of 100,000 channels: seconds when loaded
        wait_for(lambda: ctx.get("BIG:Count") >= 100_000, 30, "the initial values recorded")
        base = ctx.get("BIG:Count")
        ctx.put("BURST::Go", 1)
        wanted = base + SAMPLE * BURST
        wait_for(lambda: ctx.get("BIG:Count") >= wanted, 60, "the burst recorded")
        assert ctx.get("BIG:Count") == wanted and ctx.get("BIG:Dropped") == 0
        for alias in ("s0", "s57", "s99"):  # a sample of histories, served on demand
            values = ctx.get(f"BIG:{alias}:Value")
            assert list(values) == list(range(BURST - CAPACITY + 1, BURST + 1))
        assert list(ctx.get(f"BIG:{names[12_345].replace(':', '_')}:Value")) == [0.0]
        ctx.put("BIG:Stop", 1)
        # CSV: NeXus writes one NXlog per channel, about 55 s for 100,000 (make bench)
        ctx.put("BIG:ExportFormat", "csv")
        ctx.put("BIG:Export", "everything", timeout=120)
        path = Path(ctx.get("BIG:ExportPath") + "")  # the raw string (str() adds a stamp)
        assert ctx.get("BIG:ExportRows") == 100_000 + SAMPLE * (CAPACITY - 1)
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 100_000 + SAMPLE * (CAPACITY - 1)
    assert len({row["channel"] for row in rows}) == 100_000
    s99 = [float(row["value"]) for row in rows if row["channel"] == "s99"]
    assert s99 == list(range(BURST - CAPACITY + 1, BURST + 1))


def test_a_10k_channel_config_round_trips_through_the_factory(factory_process) -> None:
    fac = factory_process()
    channels: list[object] = [f"RT:{i:05d}" for i in range(9_000)]
    channels += [{"pv": f"ca://RT:C{i}", "alias": f"c{i}", "units": "mm"} for i in range(1000)]
    config = {"channels": channels, "capacity": 10, "connect_timeout": 600}
    assert len(json.dumps(config)) > 128 * 1024  # more than one command-line word holds
    fac.create("collector", "big", config)
    prefix = fac.prefix + "big:"
    served = json.loads(fac.ctx.get(prefix + "Config", timeout=30))
    got = validate_config(CollectorConfig, served)
    # (a factory's collectors persist unless the config says otherwise)
    want = validate_config(CollectorConfig, {"persist": True, **config, "access": served["access"]})
    assert got.model_dump() == want.model_dump()
    assert len(fac.ctx.get(prefix + "Channels", timeout=30).value.alias) == 10_000
    fac.call("Destroy", name="big")


def test_channel_pvs_are_made_for_clients_and_dropped_after(sim_ioc, collector, prefix, ctx):
    served = collector({"channels": [sim_ioc.prefix + "Counter"]})
    alias = f"{sim_ioc.prefix}Counter".replace(":", "_")
    family = served.device.channel_pvs
    gone = lambda: served.server.family_pvs_served == 0 and not family.live()  # noqa: E731
    assert gone()
    wait_for(lambda: ctx.get(f"{prefix}{alias}:Connected") == 1, 10, "Connected")
    assert served.server.family_pvs_served == 1  # p4p's client keeps its channels cached
    ctx.disconnect()  # as a pvget that exits
    wait_for(gone, 5, "the PVs of a get dropped")
    ctx.put(prefix + "Start", 1)
    updates: list[object] = []
    subscription = ctx.monitor(f"{prefix}{alias}:Value", updates.append)
    try:
        wait_for(lambda: len(updates) >= 2, 10, "two history updates")
        assert served.server.family_pvs_served == 1 and len(family.live()) == 1
    finally:
        subscription.close()
    ctx.disconnect()
    wait_for(gone, 5, "the monitored PV dropped")
    ctx.put(f"{prefix}{alias}:View:Points", 50)  # a setting a client changed is kept
    ctx.disconnect()
    wait_for(lambda: served.server.family_pvs_served == 0, 5, "the put's PV dropped")
    assert len(family.live()) == 1 and ctx.get(f"{prefix}{alias}:View:Points") == 50
    assert len(ctx.get(f"{prefix}{alias}:View:Time")) <= 50
