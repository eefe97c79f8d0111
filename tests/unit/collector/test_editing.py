"""Channels added and removed while the collector records (Add, Remove), kept for restarts."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import pytest
from tests.doubles import InMemorySources

from epics_collector.collector import Collector
from epics_collector.collector._editing import JOURNAL
from epics_collector.core import Caller, RpcError
from epics_collector.process import wait_for_async

T = 1.7e9


def _channels(device: Collector) -> list[str]:
    device.publisher.publish_channel_table()
    return list(device.channel_table.value["alias"])


def test_added_channels_record_at_once_removed_ones_keep_their_rows_and_both_persist(
    tmp_path: Path,
) -> None:
    config = {"channels": [{"pv": "A", "alias": "a"}], "autostart": True, "persist": True}

    async def first_run() -> None:
        sources = InMemorySources()
        device = Collector(config, data_dir=tmp_path, sources=sources)
        await device.start()
        try:
            sources.connect("A", 1.0, T)
            assert "B: B added" in await device.call("Add", {"channel": "B"})
            spec = json.dumps({"pv": "ca://C", "alias": "c", "kind": "string"})
            await device.call("Add", {"channel": spec})
            assert _channels(device) == ["a", "B", "c"]
            assert device.has_pv("B:Value") and device.has_pv("c:Table")
            sources.connect("B", 5.0, T + 1)
            sources.connect("C", "on", T + 1)
            sources.post("A", 2.0, T + 2)
            b, c = device.recorder.by_alias["B"], device.recorder.by_alias["c"]
            await wait_for_async(lambda: len(c.ring) == 1, 5.0, "c recorded")
            assert list(device.recorder.history.rows(b).value) == [5.0]
            assert "2 rows kept" in await device.call("Remove", {"alias": "a"})
            sources.post("A", 3.0, T + 3)  # (its subscription is closed: never recorded)
            assert _channels(device) == ["B", "c"] and not device.has_pv("a:Value")
            device.editing.publish()
            removed = device.editing.removed_table.value
            assert list(removed["alias"]) == ["a"] and list(removed["count"]) == [2]
            rows = await device.call(
                "Query",
                {"alias": "a", "start": "0", "end": "4e9", "points": "100", "operator": "raw"},
            )
            assert list(rows["value"]) == [1.0, 2.0]  # its rows are read as before
            for bad, why in (
                ({"channel": "B"}, "taken"),
                ({"channel": '{"pv": "D", "kind": "bogus"}'}, "kind"),
                ({"channel": '{"pv": "D", "nope": 1}'}, "nope"),
                ({"channel": "{"}, "JSON"),
            ):
                with pytest.raises(RpcError, match=why):
                    await device.call("Add", bad)
            with pytest.raises(RpcError, match="no recorded channel"):
                await device.call("Remove", {"alias": "zz"})
            with pytest.raises(RpcError, match="control"):  # a peer without the right
                await device.call("Add", {"channel": "E"}, Caller(peer="10.9.9.9:5075"))
        finally:
            await device.stop()

    asyncio.run(first_run())
    assert len((tmp_path / JOURNAL).read_text().splitlines()) == 3

    async def second_run() -> None:
        sources = InMemorySources()
        device = Collector(config, data_dir=tmp_path, sources=sources)
        await device.start()
        try:
            assert _channels(device) == ["B", "c"]  # as the journal left them
            a = device.recorder.by_alias["a"]
            assert not math.isnan(a.removed) and list(device.recorder.history.rows(a).value)[
                :2
            ] == [1.0, 2.0]
            again = json.dumps({"pv": "A", "alias": "a"})
            assert "recorded again" in await device.call("Add", {"channel": again})
            sources.connect("A", 7.0, time.time() + 1)  # (after the outage's gap row)
            await wait_for_async(
                lambda: 7.0 in list(device.recorder.history.rows(a).value), 5.0, "a again"
            )
            assert _channels(device) == ["a", "B", "c"]
            await wait_for_async(lambda: '"A"' in device.config_json.value, 5.0, "Config")
            config_pv = json.loads(device.config_json.value)  # (follows at the next flush)
            assert [c if isinstance(c, str) else c["pv"] for c in config_pv["channels"]] == [
                "A",
                "B",
                "ca://C",
            ]
        finally:
            await device.stop()

    asyncio.run(second_run())


def test_a_pause_resumes_with_an_add_and_a_purge_deletes_a_removed_channels_rows(
    tmp_path: Path,
) -> None:
    config = {"channels": [{"pv": "A", "alias": "a"}, "B"], "autostart": True, "persist": True}

    async def run(first: bool) -> dict[str, list]:
        sources = InMemorySources()
        device = Collector(config, data_dir=tmp_path, sources=sources)
        await device.start()
        try:
            if first:
                sources.connect("A", 1.0, time.time())
                sources.connect("B", 2.0, time.time())
                a = device.recorder.by_alias["a"]
                await wait_for_async(lambda: len(a.ring) == 1, 5.0, "a row")
                assert "paused" in await device.call("Remove", {"alias": "a", "pause": "true"})
                with pytest.raises(RpcError, match="removed already"):
                    await device.call("Remove", {"alias": "a", "pause": "1"})
                with pytest.raises(RpcError, match="true or false"):
                    await device.call("Remove", {"alias": "B", "pause": "maybe"})
                await device.call("Remove", {"alias": "B"})
                with pytest.raises(RpcError, match="delete"):  # its own right
                    await device.call("Purge", {"alias": "B"}, Caller(peer="10.9.9.9:5075"))
                with pytest.raises(RpcError, match="Remove it first"):
                    await device.call("Purge", {"alias": "zz"})
                assert "1 rows deleted" in await device.call("Purge", {"alias": "B"})
                assert "B" not in device.recorder.by_alias
            device.editing.publish()
            return {k: list(v) for k, v in device.editing.removed_table.value.items()}
        finally:
            await device.stop()

    first = asyncio.run(run(True))
    assert first["alias"] == ["a"] and first["paused"] == [True]
    again = asyncio.run(run(False))  # the journal replayed: a paused, B gone with its rows
    assert again["alias"] == ["a"] and again["paused"] == [True] and again["count"] == [1]
