"""Recordings outlive their collector: kept at Destroy, listed, read, merged, purged.

Before: Destroy moved a collector's files aside and nothing served them again; a new
collector of the same name hid the earlier recording from every reader.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import pytest
from p4p import Value
from p4p.client.thread import Context
from p4p.nt import NTURI
from tests.clients.retrieval import Service, push
from tests.conftest import FactoryHandle, cli

from epics_collector.client import Binned, Factory
from epics_collector.process import wait_for
from epics_collector.pva import Network

pytestmark = pytest.mark.system
StartFactory = Callable[..., FactoryHandle]


def _count(fac: FactoryHandle, prefix: str) -> int:
    value = cast(Any, fac.ctx.get(prefix + "Count"))
    return int(value["value"] if isinstance(value, Value) else value)


def _pushed(fac: FactoryHandle, prefix: str, stamps: np.ndarray, first: int) -> None:
    for k, stamp in enumerate(stamps):
        push(fac, prefix, "p", str(first + k), repr(float(stamp)))


def _table(fac: FactoryHandle, name: str) -> dict[str, list[Any]]:
    table = cast(Any, fac._raw.get(fac.prefix + name))["value"]  # noqa: SLF001
    return {key: list(table[key]) for key in table.keys()}


def test_a_destroyed_collectors_recording_is_kept_read_merged_and_purged(
    factory_process: StartFactory, network: Network
) -> None:
    fac = factory_process()
    base = time.time() - 3600
    first_life = base + np.arange(250) * 0.1  # stamps that do not round-trip a float
    prefix = fac.create("collector", "life", {"channels": ["NO:SOURCE:HERE"]})
    _pushed(fac, prefix, first_life, 0)
    answer = fac.call("Destroy", name="life")
    match = re.search(r"kept as (life\.\d{8}-\d{6})", answer)
    assert match, answer
    kept = match[1]
    # listed with its rows, read back whole through the factory, by the client
    wait_for(lambda: kept in _table(fac, "Recordings")["id"], 10, "the retired recording listed")
    with Factory.connect(fac.prefix, network=network) as client:
        (info,) = [r for r in client.recordings() if r.id == kept]
        assert (info.name, info.state, info.rows) == ("life", "retired", 250)
        assert info.first == pytest.approx(first_life[0]) and info.destroyed > info.created
        assert "push:p" in info.pvs
        rows = client.history(kept, "p")
        np.testing.assert_array_equal(rows.value, np.arange(250.0))
        np.testing.assert_allclose(rows.time, first_life)
        counted = client.history(kept, "p", operator="count", points=1)
        assert isinstance(counted, Binned) and list(counted.value) == [250]
    # the CLI reads it too
    listed = cli("recordings", "-f", fac.prefix, env=fac.env)
    assert listed.returncode == 0 and kept in listed.stdout and "retired" in listed.stdout
    printed = cli(
        "history", "life", "p", "-f", fac.prefix, "--recording", kept, "--csv", env=fac.env
    )
    assert printed.returncode == 0, printed.stderr
    assert len(printed.stdout.splitlines()) == 1 + 250
    # a new collector of the same name starts empty; both recordings are served, merged
    second = fac.create("collector", "life", {"channels": ["NO:SOURCE:HERE"]})
    second_life = base + 100 + np.arange(100) * 0.1
    _pushed(fac, second, second_life, 250)
    wait_for(lambda: _count(fac, second) == 100, 10, "the second life's rows")
    with Service(network, "--factory", fac.prefix) as service:
        wait_for(lambda: "p" in service.names(), 20, "the channel listed")
        status, body = service.data("p", base - 1, base + 200, "json")
        assert status == 200, body
        (data,) = json.loads(body)
        assert [d["val"] for d in data["data"]] == [float(k) for k in range(350)]
        (status_row,) = json.loads(service.get("bpl/getPVStatus?pv=p")[1])
        assert status_row["status"] == "Paused"  # its live collector does not record
        assert any(kept in c for c in status_row["collectors"])
    # deleting is its own right, refused for a live recording, and answers with counts
    with pytest.raises(Exception, match="is a live recording"):
        fac.call("Purge", recording="life")
    fac.ctx.put(second + "Start", 1)  # recording when the factory goes down
    wait_for(lambda: str(fac.ctx.get(second + "State")) == "Recording", 10, "recording")
    fac.stop()
    fac.start('access: {delete: ["10.99.0.0/16"]}\n')
    wait_for(lambda: kept in _table(fac, "Recordings")["id"], 20, "kept after a restart")
    with pytest.raises(
        Exception, match=r"may not delete recorded history on this factory \(access.delete"
    ):
        fac.call("Purge", recording=kept)
    wait_for(lambda: _count(fac, second) >= 100, 20, "the live collector back with its rows")
    wait_for(lambda: str(fac.ctx.get(second + "State")) == "Recording", 10, "recording again")
    fac.stop()
    fac.start("{}\n")
    with Factory.connect(fac.prefix, network=network) as client:
        wait_for(lambda: any(r.id == kept for r in client.recordings()), 20, "listed")
        again = client.history(kept, "p")  # served after the factory's restart
        np.testing.assert_array_equal(again.value, np.arange(250.0))
        removed = client.purge(kept)
        assert removed["rows"] == 250 and removed["bytes"] > 0
        assert all(r.id != kept for r in client.recordings())


@pytest.mark.load
def test_a_retired_read_of_1e7_rows_stalls_neither_heartbeat_nor_create(
    factory_process: StartFactory, network: Network, tmp_path: Any
) -> None:
    """The first read loads the file on a read worker: the factory's loop goes on."""
    from epics_collector.storage import SPILL, Columns, SpillStore, describe

    rows = 10_000_000
    fac = factory_process()
    folder = fac.data_dir / "big.20260101-000000"
    (folder / SPILL).parent.mkdir(parents=True)
    store = SpillStore(folder / SPILL)
    for k in range(10):  # 10 chunks of 1e6 rows, as a long recording's flushes
        t = 1.7e9 + np.arange(k * 1_000_000, (k + 1) * 1_000_000, dtype=float)
        zeros = np.zeros(len(t), np.int8)
        store.write([("H", Columns(t, t - 1.7e9, zeros, zeros))])
    store.close()
    describe(folder, name="big", channels=[{"alias": "H", "pv": "BIG:H", "kind": "number"}])
    beats: list[float] = []
    sub = fac.ctx.monitor(fac.prefix + "Heartbeat", lambda _: beats.append(time.monotonic()))
    try:
        wait_for(lambda: len(beats) >= 2, 10, "the factory's heartbeat")
        since = time.monotonic()
        answer: list[Any] = []
        arguments = {"recording": folder.name, "alias": "H", "points": "1000"}
        request = NTURI([(k, "s") for k in arguments]).wrap(fac.prefix + "Query", kws=arguments)
        reader = threading.Thread(  # (its own client context: the main thread's creates)
            target=lambda: answer.append(fac.raw_rpc(fac.prefix + "Query", request, timeout=120))
        )
        reader.start()
        prefix = fac.create("counter", "meanwhile", {})
        reader.join(120)
        assert prefix.endswith("meanwhile:")
        bins = answer[0]["value"]
        assert len(bins["time"]) == 1000 and int(np.sum(bins["count"])) == rows
        gaps = np.diff([t for t in beats if t >= since] + [time.monotonic()])
        assert max(gaps) < 1.5, f"Heartbeat stalled {max(gaps) - 1:.2f} s beyond its period"
    finally:
        sub.close()


def test_a_factory_started_fresh_keeps_the_recordings_of_the_collectors_it_forgets(
    network: Network, tmp_path: Any
) -> None:
    data = tmp_path / "data"
    with Factory.local("FRESH:FAC:", data_dir=data, network=network) as fac:
        col = fac.create_collector("c", channels=["NO:SOURCE:HERE"])
        with Context("pva", conf=network.client_conf(), useenv=False, nt=False) as ctx:
            pusher = SimpleNamespace(
                raw_rpc=lambda pv, request, timeout: ctx.rpc(pv, request, timeout=timeout)
            )
            for k in range(20):
                push(pusher, col.prefix, "p", str(k), repr(1.7e9 + k))
        wait_for(lambda: col.count() >= 20, 10, "the pushed rows")
    with Factory.local("FRESH:FAC:", data_dir=data, network=network) as fac:  # fresh
        kept = [r for r in fac.recordings() if r.name == "c"]
        assert [(r.state, r.rows) for r in kept] == [("retired", 20)]
        assert fac.devices() == []
