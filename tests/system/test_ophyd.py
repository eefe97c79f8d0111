"""ophyd-async devices and bluesky plans against a real factory, IOC and RunEngine."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote, unquote

import bluesky.plans as bp
import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from event_model import DocumentNames, schema_validators
from ophyd_async.core import NotConnectedError, init_devices
from tests.conftest import FactoryHandle

from epics_collector.ophyd import (
    CollectorDevice,
    FactoryDevice,
    ProcessingDevice,
    create_collector,
    record_during,
)
from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system


@pytest.fixture
def run_engine() -> Iterator[RunEngine]:
    """A RunEngine on its own event loop, stopped and closed after the test."""
    loop = asyncio.new_event_loop()
    engine = RunEngine(call_returns_result=True, loop=loop)
    yield engine
    if engine.state not in ("idle", "panicked"):
        engine.halt()
    loop.call_soon_threadsafe(loop.stop)
    engine._th.join(5)  # noqa: SLF001 (bluesky's loop thread)
    loop.close()


class Documents:
    """Every document of the runs, validated against the event-model schemas."""

    def __init__(self) -> None:
        self.by_name: dict[str, list[dict[str, Any]]] = defaultdict(list)

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        schema_validators[DocumentNames(name)].validate(doc)
        self.by_name[name].append(doc)

    def stream(self, stream: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The descriptor and the events (from event pages) of ``stream``."""
        (descriptor,) = [d for d in self.by_name["descriptor"] if d["name"] == stream]
        events = [
            {"data": e["data"], "timestamps": e["timestamps"]}
            for e in self.by_name["event"]
            if e["descriptor"] == descriptor["uid"]
        ]
        for page in self.by_name["event_page"]:
            if page["descriptor"] == descriptor["uid"]:
                for i in range(len(page["time"])):
                    data = {k: v[i] for k, v in page["data"].items()}
                    stamps = {k: v[i] for k, v in page["timestamps"].items()}
                    events.append({"data": data, "timestamps": stamps})
        return descriptor, events


def _devices(
    factory_process: Callable[..., FactoryHandle],
    sim_ioc: SimIoc,
    export: bool = False,
    export_uri: Callable[[Path], str] | None = None,
) -> tuple[CollectorDevice, ProcessingDevice]:
    """A collector of two sim PVs and a calc device, made by a factory and connected.

    ``export_uri`` makes the collector's export URI from its data directory.
    """
    fac = factory_process()
    col = fac.create(
        "collector",
        "bg",
        {
            "channels": [
                {"pv": sim_ioc.prefix + "Counter", "alias": "counter"},
                {"pv": sim_ioc.prefix + "Pressure", "alias": "pressure"},
            ]
        },
    )
    proc = fac.create(
        "processing",
        "double",
        {
            "inputs": {"a": sim_ioc.prefix + "Counter"},
            "processor": {"name": "calc", "params": {"expression": "a * 2"}},
        },
    )
    with init_devices():
        uri = export_uri(fac.data_dir / "bg") if export_uri else None
        collector = CollectorDevice(col, export=export, export_uri=uri)
        det = ProcessingDevice(proc)
    return collector, det


def test_record_during_a_count_of_a_processing_device(
    factory_process: Callable[..., FactoryHandle],
    sim_ioc: SimIoc,
    run_engine: RunEngine,
) -> None:
    collector, det = _devices(factory_process, sim_ioc)
    added = {"pv": sim_ioc.prefix + "Temperature", "alias": "temp"}  # one more, at run time

    async def add() -> None:
        await collector.add_channel(added)

    asyncio.run_coroutine_threadsafe(add(), run_engine.loop).result(10)
    assert "temp" in collector.channels
    docs = Documents()
    run_engine(record_during(collector, bp.count([det], num=5, delay=0.5)), cast(Any, docs))
    assert len(docs.stream("collector-temp")[1]) >= 5  # its own stream, from this run on

    async def remove() -> None:
        await collector.remove_channel("temp")

    asyncio.run_coroutine_threadsafe(remove(), run_engine.loop).result(10)
    assert "temp" not in collector.channels

    # the detector: five fresh calc outputs, twice the counter
    _, primary = docs.stream("primary")
    results = [e["data"]["det-output_result"] for e in primary]
    assert len(results) == 5 and all(r > 0 and r % 2 == 0 for r in results)
    assert results == sorted(results) and len(set(results)) == 5

    # the collector: each channel's stream holds exactly its history for the run
    start, stop = docs.by_name["start"][0]["time"], docs.by_name["stop"][0]["time"]
    for alias in ("counter", "pressure"):
        descriptor, events = docs.stream(f"collector-{alias}")
        assert descriptor["data_keys"][f"collector-{alias}"]["source"].endswith(f"{alias}:Table")
        history = asyncio.run_coroutine_threadsafe(
            collector._run_info.history(alias), run_engine.loop
        ).result(10)
        key = f"collector-{alias}"
        stamps = [e["timestamps"][key] for e in events]  # source timestamps of the rows
        assert stamps == history.time.tolist()
        assert history.value is not None
        assert [e["data"][key] for e in events] == history.value.tolist()
        assert len(events) >= 5 and start - 1 <= stamps[0] and stamps[-1] <= stop
    counters = [e["data"]["collector-counter"] for e in docs.stream("collector-counter")[1]]
    assert counters == list(np.arange(counters[0], counters[0] + len(counters)))  # none lost


def test_export_gives_stream_resources_pointing_at_the_file(
    factory_process: Callable[..., FactoryHandle],
    sim_ioc: SimIoc,
    run_engine: RunEngine,
) -> None:
    collector, det = _devices(factory_process, sim_ioc, export=True)
    _check_stream_resources(collector, det, run_engine, "file://")


def test_export_uri_points_the_documents_where_the_run_engine_reads_the_file(
    factory_process: Callable[..., FactoryHandle],
    sim_ioc: SimIoc,
    run_engine: RunEngine,
    tmp_path: Path,
) -> None:
    """Walkthrough 3, finding 19: a remote factory's file was named by its own path."""
    shared = tmp_path / "mnt" / "beamline data"  # the data directory, as mounted here

    def mount(data_dir: Path) -> str:
        shared.parent.mkdir(parents=True, exist_ok=True)
        shared.symlink_to(data_dir, target_is_directory=True)
        return f"file://localhost{quote(str(shared))}"  # a URI: its space quoted

    collector, det = _devices(factory_process, sim_ioc, export=True, export_uri=mount)
    _check_stream_resources(collector, det, run_engine, "file://localhost" + str(shared) + "/")


def _check_stream_resources(
    collector: CollectorDevice, det: ProcessingDevice, run_engine: RunEngine, base: str
) -> None:
    """A run's StreamResources start with ``base``, and name files that hold the rows."""
    docs = Documents()
    run_engine(record_during(collector, bp.count([det], num=3, delay=0.3)), cast(Any, docs))
    resources = {d["data_key"]: d for d in docs.by_name["stream_resource"]}
    assert set(resources) == {"collector-counter", "collector-pressure"}
    for key, resource in resources.items():
        uri = unquote(resource["uri"])
        assert uri.startswith(base), uri
        path = Path(uri.removeprefix("file://").removeprefix("localhost"))
        (datum,) = [
            d for d in docs.by_name["stream_datum"] if d["stream_resource"] == resource["uid"]
        ]
        with h5py.File(path) as nexus:
            dataset: Any = nexus[resource["parameters"]["dataset"]]
            rows = dataset[()]
        assert datum["indices"] == {"start": 0, "stop": len(rows)} and len(rows) >= 3
        descriptor, _ = docs.stream(key)
        assert descriptor["data_keys"][key]["external"] == "STREAM:"


def test_create_collector_in_a_plan_and_read_the_factory(
    factory_process: Callable[..., FactoryHandle],
    sim_ioc: SimIoc,
    run_engine: RunEngine,
) -> None:
    fac = factory_process()
    channels = [{"pv": sim_ioc.prefix + "Temperature", "alias": "t"}]
    result: Any = run_engine(create_collector(fac.prefix, "planned", channels))
    collector = result.plan_result
    assert isinstance(collector, CollectorDevice) and list(collector.channels) == ["t"]
    with init_devices():
        factory = FactoryDevice(fac.prefix)
    table = asyncio.run_coroutine_threadsafe(factory.devices.get_value(), run_engine.loop).result(
        10
    )
    assert list(table.name) == ["planned"]
    types = asyncio.run_coroutine_threadsafe(factory.types.get_value(), run_engine.loop).result(10)
    assert list(types) == ["collector", "counter", "processing"]
    assert "destroyed planned" in fac.call("Destroy", name="planned")


def test_a_prefix_with_nothing_behind_it_fails_connect_naming_the_pv(
    run_engine: RunEngine,
) -> None:
    made: list[FactoryDevice] = []
    with pytest.raises(NotConnectedError, match="NOTHING:FAC:PVI"):
        with init_devices(timeout=1.0):
            factory = FactoryDevice("NOTHING:FAC:")
            made.append(factory)
    assert made[0].name == "factory"
