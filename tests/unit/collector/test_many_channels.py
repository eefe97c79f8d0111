"""Per-channel PVs on demand, compact configs and the size bound (issue 22)."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import pytest
from tests.doubles import InMemorySources

from epics_collector.collector import Collector, CollectorConfig
from epics_collector.collector._subscribing import BATCH
from epics_collector.core import ConfigError, listed, validate_config
from epics_collector.core import _config as core_config
from epics_collector.process import device_arguments, wait_for_async
from epics_collector.process._device import INLINE_CONFIG_CHARS

NUMBER_SUFFIXES = {
    "Value", "Time", "Table", "Tail", "Connected", "PVI",
    *(f"View:{s}" for s in ("Start", "End", "Points", "Operator", "Time", "Value", "Min", "Max")),
    "View:PVI",
}  # fmt: skip


def collector(tmp_path: Path, channels: int = 3) -> Collector:
    names = [f"P:{i}" for i in range(channels)]
    return Collector({"channels": names, "capacity": 10}, data_dir=tmp_path)


def test_channel_pvs_exist_only_while_used(tmp_path: Path) -> None:
    device = collector(tmp_path, channels=1000)
    family = device.channel_pvs
    assert family.live() == [] and not any(":" in name for name in device.pvs)
    assert device.has_pv("P_7:Value") and device.has_pv("P_7:View:Max")
    assert not device.has_pv("P_7:Nope") and not device.has_pv("nobody:Value")
    assert {n.partition(":")[2] for n in family.names() if n.startswith("P_7:")} == NUMBER_SUFFIXES
    assert sum(1 for _ in family.names()) == 1000 * len(NUMBER_SUFFIXES)

    value = family.make("P_7:Value")
    connected = family.make("P_7:Connected")
    assert [p.channel.alias for p in family.live()] == ["P_7"]
    assert value.name == "P_7:Value" and connected.value is False
    family.release("P_7:Value")
    assert len(family.live()) == 1  # Connected is still in use
    family.release("P_7:Connected")
    assert family.live() == []
    assert family.make("P_7:Value") is not value  # made again when asked again
    family.release("P_7:Value")


def test_a_changed_view_setting_keeps_the_channel_pvs_until_reset(tmp_path: Path) -> None:
    device = collector(tmp_path)

    async def scenario() -> None:
        await device.put("P_1:View:Points", 50)  # made, put, released: kept (customised)
        [pvs] = device.channel_pvs.live()
        assert pvs.view is not None and pvs.view.points.value == 50
        await device.put("P_1:View:Points", 1000)  # the default again: dropped
        assert device.channel_pvs.live() == []
        with pytest.raises(Exception, match="read-only"):
            await device.put("P_1:Value", 1)
        with pytest.raises(Exception, match="no PV named"):
            await device.put("P_1:Nope", 1)

    asyncio.run(scenario())


def test_connected_of_live_channels_follows_the_source(tmp_path: Path) -> None:
    sources = InMemorySources()
    device = Collector({"channels": ["A", "B"]}, data_dir=tmp_path, sources=sources)

    async def scenario() -> None:
        await device.start()
        try:
            connected = device.channel_pvs.make("A:Connected")
            sources.connect("A", 1.0, 1.7e9)
            await wait_for_async(lambda: connected.value is True, 5.0, "A:Connected")
            assert device.recorder.connected == 1
            sources.connect("B", 1.0, 1.7e9)
            await wait_for_async(
                lambda: device.message.value == "all channels connected", 5.0, "both"
            )
            device.channel_pvs.release("A:Connected")
        finally:
            await device.stop()

    asyncio.run(scenario())


def test_channels_beyond_a_batch_are_subscribed_in_the_background(tmp_path: Path) -> None:
    sources = InMemorySources()
    names = [f"P{i}" for i in range(BATCH + 10)]
    device = Collector({"channels": names}, data_dir=tmp_path, sources=sources)

    async def scenario() -> None:
        await device.start()
        try:
            subscriber = device.subscriber
            assert subscriber is not None
            assert subscriber.subscribed == BATCH  # at once; the rest follows
            await wait_for_async(lambda: subscriber.subscribed == len(names), 5.0, "all subscribed")
        finally:
            await device.stop()

    asyncio.run(scenario())


class _FailingLater(InMemorySources):
    """Sources whose subscribe raises after ``works`` subscriptions (a transport bug)."""

    def __init__(self, works: int) -> None:
        super().__init__()
        self.works = works

    def subscribe(self, url, listener, *, queue_size):  # type: ignore[no-untyped-def]
        if self.works == 0:
            raise RuntimeError("the transport broke")
        self.works -= 1
        return super().subscribe(url, listener, queue_size=queue_size)


def test_background_subscribing_that_fails_puts_the_device_in_fault(tmp_path: Path) -> None:
    sources = _FailingLater(works=BATCH + 5)
    names = [f"P{i}" for i in range(2 * BATCH)]
    device = Collector({"channels": names}, data_dir=tmp_path, sources=sources)

    async def scenario() -> None:
        await device.start()
        try:
            await wait_for_async(lambda: device.state.value == "Fault", 5.0, "Fault")
            assert device.message.value == (
                f"subscribing failed after {BATCH + 5} channels ({BATCH - 5} left): "
                "the transport broke"
            )
        finally:
            await device.stop()

    asyncio.run(scenario())


def test_config_serves_channels_without_their_defaults() -> None:
    config = validate_config(
        CollectorConfig,
        {
            "channels": [
                "A:B",
                {"pv": "ca://X:Y.VAL", "units": "mm"},
                {"pv": "Q", "alias": "q1", "compress": {"algorithm": "mean", "n": 10}},
                {"pv": "W", "kind": "waveform"},
            ],
            "capacity": 5,
        },
    )
    served = json.loads(config.served_json())
    assert served["channels"][:2] == ["A:B", {"pv": "ca://X:Y.VAL", "units": "mm"}]
    assert served["capacity"] == 5 and "access" not in served
    again = validate_config(CollectorConfig, served)
    assert again.model_dump() == config.model_dump()
    big = validate_config(CollectorConfig, {"channels": [f"BL:CH{i:06d}" for i in range(100_000)]})
    assert len(big.served_json()) < 2_000_000  # 100,000 channels: under 2 MB


def test_a_config_too_big_to_serve_is_refused_at_config_time(monkeypatch) -> None:
    monkeypatch.setattr(core_config, "MAX_CONFIG_CHARS", 10_000)
    channels = [f"BL:CH{i:06d}" for i in range(1000)]
    with pytest.raises(ConfigError, match=r"characters as served, more than 10000: split"):
        validate_config(CollectorConfig, {"channels": channels})


def test_a_long_config_goes_through_a_private_file(tmp_path: Path) -> None:
    config = {"channels": [f"BL:CH{i:06d}" for i in range(10_000)]}
    assert len(json.dumps(config)) > INLINE_CONFIG_CHARS
    file = tmp_path / "configs" / "big.json"
    args = device_arguments("collector", "P:", config, config_file=file)
    assert args[args.index("--config") + 1] == str(file)
    assert json.loads(file.read_text()) == config
    assert stat.S_IMODE(os.stat(file).st_mode) == 0o600
    with pytest.raises(ValueError, match="needs a .json file"):
        device_arguments("collector", "P:", config)
    small = device_arguments("collector", "P:", {"channels": ["A"]}, config_file=file)
    assert json.loads(small[small.index("--config") + 1]) == {"channels": ["A"]}


def test_listed_keeps_messages_short() -> None:
    assert listed(["a", "b"]) == "a, b"
    many = listed([str(i) for i in range(100_000)])
    assert many == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9, and 99990 more"
