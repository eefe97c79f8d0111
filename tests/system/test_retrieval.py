"""The Archiver Appliance retrieval API over real collectors, read with aapy (PyPI)."""

from __future__ import annotations

import calendar
import json
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, cast

import numpy as np
import psutil
import pytest
from p4p import Value
from tests.clients.retrieval import Service, iso, push
from tests.clients.run import aapy_decode, aapy_fetch
from tests.conftest import FactoryHandle

from epics_collector.process import wait_for
from epics_collector.pva import Network
from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system
StartFactory = Callable[..., FactoryHandle]
NEW_YEAR = calendar.timegm((2026, 1, 1, 0, 0, 0))


@pytest.fixture
def recorded(
    factory_process: StartFactory, sim_ioc: SimIoc, network: Network
) -> Iterator[tuple[FactoryHandle, str, Service]]:
    """A factory's collector recording the sim IOC, and a retrieval service following it."""
    fac = factory_process()
    p = sim_ioc.prefix
    config = {
        "channels": [
            {"pv": p + "Temperature"},
            {"pv": p + "BeamMode"},
            {"pv": p + "Waveform", "kind": "waveform"},
        ],
        "autostart": True,
    }
    prefix = fac.create("collector", "rec", config)
    with Service(network, "--factory", fac.prefix) as service:
        yield fac, prefix, service


def _count(fac: FactoryHandle, prefix: str) -> int:
    value = cast(Any, fac.ctx.get(prefix + "Count"))
    return int(value["value"] if isinstance(value, Value) else value)


def _count_or_0(fac: FactoryHandle, prefix: str) -> int:
    """The Count, or 0 while the collector does not answer."""
    try:
        return _count(fac, prefix)
    except TimeoutError:
        return 0


def _query(fac: FactoryHandle, prefix: str, **arguments: str) -> dict[str, np.ndarray]:
    from p4p.nt import NTURI

    uri = NTURI([(key, "s") for key in arguments])
    value = fac.raw_rpc(prefix + "Query", uri.wrap(prefix + "Query", kws=arguments), timeout=30)
    columns = value["value"]
    return {name: np.asarray(columns[name]) for name in columns.keys()}


def test_recorded_pvs_read_with_aapy_match_the_collectors_rows(
    recorded: tuple[FactoryHandle, str, Service], sim_ioc: SimIoc
) -> None:
    fac, prefix, service = recorded
    p = sim_ioc.prefix
    start = time.time() - 3600

    def temperature_span() -> float:
        """Seconds between the first Temperature row and now (0 without rows)."""
        times = _query(fac, prefix, alias=p + "Temperature", start=repr(start))["time"]
        return time.time() - float(np.floor(times[0])) if len(times) else 0.0

    # Count is every channel's rows: wait on Temperature's own, over whole seconds, so the
    # optimized read below has several bins
    wait_for(lambda: temperature_span() >= 3, 30, "Temperature rows over 3 s")
    wait_for(lambda: p + "Temperature" in service.names(), 20, "the PV listed")
    assert {p + "Temperature", p + "BeamMode", p + "Waveform"} <= set(service.names())
    end = time.time()

    def temperature(operator: str) -> dict[str, Any]:
        """The collector's own Query of the Temperature rows over the hour."""
        return _query(
            fac,
            prefix,
            alias=p + "Temperature",
            start=repr(start),
            end=repr(end),
            operator=operator,
            points="100000",
        )

    rows = temperature("raw")
    # PB, decoded by aapy's own protobuf code: values, times to the nanosecond, alarms
    status, body = service.data(p + "Temperature", start, end)
    assert status == 200, body
    chunks = aapy_decode(body)
    (chunk,) = chunks
    assert chunk["type"] == 6 and chunk["pvname"] == p + "Temperature"
    headers = chunk["headers"]
    assert headers["EGU"] == "degC" and headers["PREC"] == "3"
    assert float(headers["HIHI"]) == 21.9 and float(headers["LOPR"]) == 15.0
    year_start = calendar.timegm((chunk["year"], 1, 1, 0, 0, 0))
    events = [e for e in chunk["events"] if year_start + e["secondsintoyear"] <= int(end)]
    n = len(rows["time"])
    got = events[:n]
    page = temperature("page")
    assert np.allclose(page["time"], rows["time"], rtol=0, atol=0)  # the same rows
    expected_secs, expected_nanos = np.divmod(page["ns"], 1_000_000_000)  # exact stamps
    assert [year_start + e["secondsintoyear"] for e in got] == list(expected_secs)
    assert [e["nano"] for e in got] == list(expected_nanos)
    assert [e["val"] for e in got] == list(rows["value"])
    assert [e["severity"] for e in got] == list(rows["severity"])
    assert [e["status"] for e in got] == list(rows["status"])
    # aapy's fetchers, as site scripts use them (PB and JSON)
    for mode in ("pb", "json"):  # (aapy asks whole seconds: the newest second is cut)
        fetched = aapy_fetch(service.port, p + "Temperature", start, end, mode)
        values = [v[0] if isinstance(v, list) else v for v in fetched["values"]]
        assert n - 20 < len(values) <= n, mode
        assert values == list(rows["value"][: len(values)]), mode
        assert np.allclose(fetched["timestamps"], rows["time"][: len(values)], atol=1e-6), mode
        assert fetched["severities"] == list(rows["severity"][: len(values)]), mode
    # optimized with fewer bins than rows: binned by the collector, as numpy bins the rows
    width, begin = 1, float(np.floor(rows["time"][0]))
    bins = int(end - begin)  # 1 s bins, fewer than rows (10 a second)
    status, body = service.data(f"optimized_{bins}({p}Temperature)", begin, end)
    (opt,) = aapy_decode(body)
    assert opt["type"] == 13 and opt["elementCount"] == 5
    secs = np.floor(rows["time"]).astype(np.int64)
    compared = 0
    for event in opt["events"]:
        middle = calendar.timegm((opt["year"], 1, 1, 0, 0, 0)) + event["secondsintoyear"]
        chosen = rows["value"][secs // width == middle // width]
        if len(chosen):
            std = np.std(chosen, ddof=1) if len(chosen) > 1 else 0.0
            expected = [chosen.mean(), std, chosen.min(), chosen.max(), len(chosen)]
            assert np.allclose(event["val"], expected, rtol=1e-9), (event, expected)
            compared += 1
    # bins hold many rows (the last one may hold a single row the newest opened)
    assert compared >= 1 and max(event["val"][4] for event in opt["events"]) >= 2
    # enum labels and waveforms
    status, body = service.data(p + "BeamMode", start, time.time())
    (enum_chunk,) = aapy_decode(body)
    assert enum_chunk["type"] == 3 and enum_chunk["enum"] == {"0": "Manual", "1": "Auto"}
    assert {e["val"] for e in enum_chunk["events"]} <= {0, 1}
    status, body = service.data(p + "Waveform", start, time.time())
    (wave,) = aapy_decode(body)
    assert wave["type"] in (8, 9, 12, 13) and wave["events"], wave["type"]
    assert all(len(e["val"]) == len(wave["events"][0]["val"]) for e in wave["events"])


def test_pushed_samples_across_new_year_come_back_as_two_chunks(
    recorded: tuple[FactoryHandle, str, Service],
) -> None:
    fac, prefix, service = recorded
    stamps = [NEW_YEAR - 1.25, NEW_YEAR - 0.5, NEW_YEAR, NEW_YEAR + 0.75]
    for k, stamp in enumerate(stamps):
        push(fac, prefix, "ny", str(k * 1.5), repr(stamp))
        push(fac, prefix, "note", f"line {k}\nwith a newline", repr(stamp))
    wait_for(lambda: "ny" in service.names() and "note" in service.names(), 20, "listed")
    status, body = service.data("ny", NEW_YEAR - 10, NEW_YEAR + 10)
    assert status == 200, body
    chunks = aapy_decode(body)
    assert [c["year"] for c in chunks] == [2025, 2026]
    events = chunks[0]["events"] + chunks[1]["events"]
    assert [e["val"] for e in events] == [0.0, 1.5, 3.0, 4.5]
    assert [e["nano"] for e in events] == [750_000_000, 500_000_000, 0, 750_000_000]
    (_, body) = service.data("note", NEW_YEAR - 10, NEW_YEAR + 10)
    texts = [e["val"] for c in aapy_decode(body) for e in c["events"]]
    assert texts == [f"line {k}\nwith a newline" for k in range(4)]
    # from == to: the value at that instant (the last sample at or before it)
    status, body = service.data("ny", NEW_YEAR - 0.1, NEW_YEAR - 0.1, "json")
    (answer,) = json.loads(body)
    assert [d["val"] for d in answer["data"]] == [1.5]
    at = service.get(
        f"data/getDataAtTime?at={iso(NEW_YEAR + 0.5)}", json.dumps(["ny", "nope"]).encode()
    )
    assert at[0] == 200 and json.loads(at[1]) == {
        "ny": {"secs": NEW_YEAR, "nanos": 0, "val": 3.0, "severity": 0, "status": 0}
    }
    # an operator over HTTP, as Phoebus's optimized reader asks
    status, body = service.data("mean_1(ny)", NEW_YEAR - 2, NEW_YEAR + 1)
    means = [e["val"] for c in aapy_decode(body) for e in c["events"]]
    assert means == [0.0, 1.5, 3.75, 3.75]  # the last bin (no sample) repeats the one before


def test_bad_requests_get_a_4xx_with_the_reason_and_the_service_goes_on(
    recorded: tuple[FactoryHandle, str, Service], sim_ioc: SimIoc
) -> None:
    _, _, service = recorded
    p = sim_ioc.prefix
    wait_for(lambda: p + "Temperature" in service.names(), 20, "the PV listed")
    now = time.time()
    status, body = service.data("NO:SUCH:PV", now - 60, now)
    assert status == 404 and b"no collector" in body
    status, body = service.data(f"avg_10({p}Temperature)", now - 60, now)
    assert status == 400 and b"supported: mean" in body
    status, body = service.data(f"mean_0({p}Temperature)", now - 60, now)
    assert status == 400 and b"positive" in body
    status, body = service.get(f"data/getData.json?pv={p}Temperature&from=yesterday")
    assert status == 400 and b"ISO 8601" in body
    status, body = service.get(f"bpl/getMatchingPVs?regex={p}Temp.*&limit=10")
    assert status == 200 and json.loads(body) == [p + "Temperature"]
    status, body = service.get(f"bpl/getMatchingPVs?pv={p}Temp*")  # the EAA's glob
    assert status == 200 and json.loads(body) == [p + "Temperature"]
    status, body = service.get(f"bpl/getAllPVs?pv={p}Be?mMode")
    assert status == 200 and json.loads(body) == [p + "BeamMode"]
    status, body = service.get(f"bpl/searchForPVsRegex?regex={p}Beam")
    assert body.decode().split() == [p + "BeamMode"]
    status, body = service.data(p + "Temperature", now - 60, now, "json")
    assert status == 200 and json.loads(body)[0]["meta"]["EGU"] == "degC"


def test_two_collectors_of_one_pv_are_merged_one_row_per_timestamp(
    recorded: tuple[FactoryHandle, str, Service], sim_ioc: SimIoc
) -> None:
    fac, first, service = recorded
    p = sim_ioc.prefix
    wait_for(lambda: _count(fac, first) >= 10, 20, "rows in the first collector")
    second = fac.create("collector", "rec2", {"channels": [p + "Temperature"], "autostart": True})
    wait_for(lambda: _count(fac, second) >= 10, 20, "rows in the second collector")
    fac.ctx.put(first + "Stop", 1)
    end = time.time()
    wait_for(
        lambda: (
            json.loads(service.get(f"bpl/getPVStatus?pv={p}Temperature")[1])[0][
                "collectors"
            ].__len__()
            == 2
        ),
        20,
        "both collectors followed",
    )
    times = [
        _query(
            fac,
            prefix,
            alias=p + "Temperature",
            start="0",
            end=repr(end),
            operator="raw",
            points="100000",
        )["time"]
        for prefix in (first, second)
    ]
    union = np.unique(np.concatenate(times))
    (answer,) = json.loads(service.data(p + "Temperature", 0, end, "json")[1])
    got = np.array([d["secs"] + d["nanos"] * 1e-9 for d in answer["data"]])
    assert len(times[0]) and len(times[1]) and len(got) == len(union)
    assert np.allclose(got, union, atol=1e-6) and (np.diff(got) > 0).all()


def _niceness(service: Service) -> set[int]:
    """The niceness of every thread of the service's process (Linux: per thread)."""
    threads = psutil.Process(service.process.pid).threads()
    return {os.getpriority(os.PRIO_PROCESS, thread.id) for thread in threads}


def test_hosts_the_read_policy_leaves_out_get_403(
    factory_process: StartFactory, network: Network, tmp_path: Any
) -> None:
    fac = factory_process()
    config = tmp_path / "retrieval.yaml"
    config.write_text('access: {read: ["10.99.0.0/16"]}\nnice: 7\n')
    with Service(network, "--factory", fac.prefix, "--config", str(config)) as service:
        assert _niceness(service) == {7}  # as configured, every thread of it
        status, body = service.get("bpl/getAllPVs")
        assert status == 403 and b"may not read" in body
        status, body = service.data("ANY", 0, 1)
        assert status == 403
        for path in ("getApplianceInfo", "getAllPVs", "getPVStatus?pv=A", "getVersions"):
            assert service.mgmt_reply(path)[0] == 403, path  # the management API too
        assert service.mgmt_reply("archivedPVs", b'["A"]', "application/json")[0] == 403


def test_an_answer_over_max_samples_says_how_many_there_are(
    factory_process: StartFactory, network: Network, tmp_path: Any
) -> None:
    fac = factory_process()
    prefix = fac.create("collector", "c", {"channels": ["NO:SOURCE:HERE"]})  # pushes only
    for k in range(5):
        push(fac, prefix, "p", str(k), repr(1.7e9 + k))
    config = tmp_path / "retrieval.yaml"
    config.write_text("max_samples: 4\nrefresh: 0.5\n")
    with Service(network, "--collector", prefix, "--config", str(config)) as service:
        assert _niceness(service) == {10}  # by default: answers take what recording leaves
        wait_for(lambda: "p" in service.names(), 20, "the pushed channel listed")
        status, body = service.data("p", 1.7e9, 1.7e9 + 10)
        assert status == 413 and b"p has 5 samples" in body and b"(4)" in body
        status, body = service.data("p", 1.7e9, 1.7e9 + 1.5)  # two: served
        assert status == 200 and len(aapy_decode(body)[0]["events"]) == 2
        # operators its collector computes are bounded by their bins, not the raw rows
        status, body = service.data("optimized_2(p)", 1.7e9, 1.7e9 + 4)  # bins of 2 s
        assert status == 200, body
        bins = [e["val"] for c in aapy_decode(body) for e in c["events"]]
        assert [b[4] for b in bins] == [2.0, 2.0, 1.0]  # [mean, std, min, max, count]
        assert bins[0][:4] == [0.5, pytest.approx(0.5**0.5), 0.0, 1.0]
        for name, expected in (("mean", [0.5, 2.5, 4.0]), ("max", [1.0, 3.0, 4.0])):
            status, body = service.data(f"{name}_2(p)", 1.7e9, 1.7e9 + 5)
            assert status == 200, body
            got = [e["val"] for c in aapy_decode(body) for e in c["events"]]
            assert got == expected, name
        status, body = service.data("median_2(p)", 1.7e9, 1.7e9 + 10)  # needs the rows here
        assert status == 413 and b"p has 5 samples" in body
        status, body = service.data("mean_1(p)", 0, 1.7e9 + 10)  # 1.7e9 bins: refused, 400
        assert status == 400 and b"more than 1000000 bins" in body


def _posting_server(network: Network, name: str) -> tuple[Any, Any]:
    """A p4p server of one double PV ``name`` (a real source), and its SharedPV."""
    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    pv = SharedPV(nt=NTScalar("d"), initial=0.0)
    provider = StaticProvider(name)
    provider.add(name, pv)
    return Server(providers=[provider], conf=network.server_conf(), useenv=False), pv


def _post_stamped(pv: Any, stamps: list[tuple[int, int]]) -> None:
    """Post value k at stamp k (seconds, nanoseconds), as fast as the server takes them."""
    for k, (secs, nanos) in enumerate(stamps, 1):
        stamp = {"secondsPastEpoch": secs, "nanoseconds": nanos}
        pv.post(Value(pv.current().raw.type(), {"value": float(k), "timeStamp": stamp}))


def test_source_timestamps_come_back_to_the_nanosecond_across_pages(
    factory_process: StartFactory, network: Network, tmp_path: Any
) -> None:
    name = "NSX:Value"
    server, pv = _posting_server(network, name)
    base = int(time.time()) + 100  # after the initial value (history stays in time order)
    # nanoseconds a float of today's POSIX seconds cannot hold (its step is ~238 ns),
    # three rows a second: 350 rows over pages of 100
    stamps = [(base + k // 3, 123_456_789 + k) for k in range(1, 351)]
    config = tmp_path / "retrieval.yaml"
    config.write_text("page_rows: 100\nrefresh: 0.5\n")
    with server:
        fac = factory_process()
        prefix = fac.create("collector", "ns", {"channels": [name], "autostart": True})
        wait_for(lambda: bool(cast(Any, fac.ctx.get(prefix + "Channels"))), 10, "Channels")
        wait_for(lambda: _count(fac, prefix) >= 1, 20, "the initial value")
        _post_stamped(pv, stamps)
        wait_for(lambda: _count(fac, prefix) >= 1 + len(stamps), 20, "every update")
        with Service(network, "--factory", fac.prefix, "--config", str(config)) as service:
            wait_for(lambda: name in service.names(), 20, "listed")
            status, body = service.data(name, base, base + 200)
            (answer,) = json.loads(service.data(name, base, base + 200, "json")[1])
    assert status == 200
    got = [(e["secondsintoyear"], e["nano"]) for c in aapy_decode(body) for e in c["events"]]
    year_start = calendar.timegm((time.gmtime(base).tm_year, 1, 1, 0, 0, 0))
    assert got[1:] == [(secs - year_start, nanos) for secs, nanos in stamps]  # (0: the value then)
    assert [(d["secs"], d["nanos"]) for d in answer["data"]][1:] == stamps


@pytest.mark.load
def test_equal_stamps_across_the_real_page_boundary_come_back_whole(
    factory_process: StartFactory, network: Network
) -> None:
    """The issue's measurement at the service's own page size (50,000): 200 twins at it.

    Paged by time, 50,300 rows of which 200 around the 50,000th share one stamp were
    served as 50,200.
    """
    name = "TWIN:Value"
    server, pv = _posting_server(network, name)
    base = int(time.time()) + 100
    stamps = [(base + k // 1000, (k % 1000) * 1_000_000) for k in range(49_900)]
    stamps += [(base + 50, 0)] * 200  # one stamp, rows 49,900 .. 50,099
    stamps += [(base + 51 + k // 1000, (k % 1000) * 1_000_000) for k in range(200)]
    with server:
        fac = factory_process()
        config = {"channels": [name], "autostart": True, "capacity": 100_000}
        prefix = fac.create("collector", "twins", config)
        wait_for(lambda: bool(cast(Any, fac.ctx.get(prefix + "Channels"))), 10, "Channels")
        wait_for(lambda: _count(fac, prefix) >= 1, 20, "the initial value")
        _post_stamped(pv, stamps)
        wait_for(lambda: _count(fac, prefix) >= 1 + len(stamps), 60, "every update")
        with Service(network, "--factory", fac.prefix) as service:
            wait_for(lambda: name in service.names(), 20, "listed")
            status, body = service.data(name, base, base + 100, "json")
    assert status == 200
    (answer,) = json.loads(body)
    values = [d["val"] for d in answer["data"]]
    assert values == [float(k) for k in range(1, 50_301)]  # (from: the first row's own time)


def _all_pushed(fac: FactoryHandle, prefix: str, channel: str, stamps: list[str]) -> None:
    for k, stamp in enumerate(stamps):
        push(fac, prefix, channel, str(k), stamp)


def test_answers_are_whole_across_page_boundaries_with_odd_and_equal_stamps(
    factory_process: StartFactory, network: Network, tmp_path: Any
) -> None:
    """Rows paged by position: floats that do not round-trip, and twins across a boundary.

    Pages of 100 rows: the irregular stamps cross 3 boundaries, the 30 equal stamps
    straddle the one at row 200. Paged by time, the answer ended early or lost twins.
    """
    fac = factory_process()
    prefix = fac.create("collector", "c", {"channels": ["NO:SOURCE:HERE"]})  # pushes only
    rng = np.random.default_rng(3)
    base = time.time() - 3600
    odd = [repr(float(t)) for t in base + np.cumsum(rng.uniform(0.05, 0.15, 350))]
    twins = [repr(base - 100 + k * 0.1) for k in range(185)] + [repr(base - 80.0)] * 30
    twins += [repr(base - 79.0 + k * 0.1) for k in range(120)]
    _all_pushed(fac, prefix, "odd", odd)
    _all_pushed(fac, prefix, "twins", twins)
    config = tmp_path / "retrieval.yaml"
    config.write_text("page_rows: 100\nrefresh: 0.5\n")
    with Service(network, "--collector", prefix, "--config", str(config)) as service:
        wait_for(lambda: {"odd", "twins"} <= set(service.names()), 20, "both channels listed")
        for channel, stamps in (("odd", odd), ("twins", twins)):
            first, last = float(stamps[0]), float(stamps[-1]) + 1e-3  # (ISO text rounds)
            status, body = service.data(channel, first, last, "json")
            assert status == 200, body
            (answer,) = json.loads(body)
            assert [d["val"] for d in answer["data"]] == [float(k) for k in range(len(stamps))]
            status, body = service.data(channel, first, last)
            events = [e["val"] for c in aapy_decode(body) for e in c["events"]]
            assert events == [float(k) for k in range(len(stamps))], channel
            means = service.data(f"count_3600({channel})", first, last, "json")[1]
            assert sum(d["val"] for d in json.loads(means)[0]["data"]) >= len(stamps)
            # and over PVA: the collector's Query pages, each after the last one's cursor
            got, cursor = [], {}
            while True:
                page = _query(fac, prefix, alias=channel, operator="page", points="100", **cursor)
                got += list(page["value"])
                if len(page["value"]) < 100:
                    break
                cursor = {"epoch": str(page["epoch"][0]), "after": str(page["index"][-1])}
            assert got == [float(k) for k in range(len(stamps))], channel


def test_a_collector_killed_mid_answer_fails_the_answer_visibly(
    factory_process: StartFactory, network: Network, tmp_path: Any
) -> None:
    """No short 200: the chunked body is cut, never closed as a complete answer."""
    import http.client
    import os
    import signal

    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    name = "KILL:Value"
    pv = SharedPV(nt=NTScalar("d"), initial=0.0)
    provider = StaticProvider("killed")
    provider.add(name, pv)
    rows = 20_000
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        fac = factory_process()
        config = {"channels": [name], "autostart": True, "persist": True}
        prefix = fac.create("collector", "k", config)
        wait_for(lambda: _count(fac, prefix) >= 1, 20, "the initial value")
        base = time.time() + 10  # after the initial value (history stays in time order)
        for k in range(rows):
            pv.post(float(k), timestamp=base + k * 0.01)
        wait_for(lambda: _count(fac, prefix) >= rows, 30, "every update recorded")
        config = tmp_path / "retrieval.yaml"
        config.write_text("page_rows: 10\nrefresh: 0.5\n")
        with Service(network, "--factory", fac.prefix, "--config", str(config)) as service:
            wait_for(lambda: name in service.names(), 20, "listed")
            for kind in ("json", "raw"):  # (raw: the collector restored from its spill)
                wait_for(lambda: _count_or_0(fac, prefix) >= rows, 60, "every row held")
                query = urllib.parse.urlencode(
                    {"pv": name, "from": iso(base), "to": iso(base + rows)}
                )
                connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
                connection.request("GET", f"/retrieval/data/getData.{kind}?{query}")
                reply = connection.getresponse()
                assert reply.status == 200
                assert reply.read(200)  # the answer has begun: some pages are out
                os.kill(int(fac.row("k")["pid"]), signal.SIGKILL)
                with pytest.raises(http.client.IncompleteRead):
                    reply.read()
                connection.close()


def test_gap_rows_are_null_in_json_whatever_the_source_type(
    factory_process: StartFactory, network: Network
) -> None:
    """A disconnect's gap row of an int32/int64 source was served as 0 by getData.json."""
    from p4p.nt import NTScalar
    from p4p.server import Server, StaticProvider
    from p4p.server.thread import SharedPV

    codes = {"GAP:Int": "i", "GAP:Long": "l", "GAP:Double": "d"}
    provider = StaticProvider("gaps")
    pvs = {name: SharedPV(nt=NTScalar(code), initial=7) for name, code in codes.items()}
    for name, pv in pvs.items():
        provider.add(name, pv)
    fac = factory_process()
    with Service(network, "--factory", fac.prefix) as service:
        with Server(providers=[provider], conf=network.server_conf(), useenv=False):
            prefix = fac.create("collector", "g", {"channels": list(codes), "autostart": True})
            wait_for(lambda: _count(fac, prefix) >= 3, 20, "the three initial values")
            for pv in pvs.values():  # a MINOR HIGH sample, as QSRV serves a record's
                alarm = {"severity": 1, "status": 1, "message": "HIGH"}
                stamp = {"secondsPastEpoch": int(time.time()) + 1}
                pv.post(
                    Value(pv.current().raw.type(), {"value": 8, "alarm": alarm, "timeStamp": stamp})
                )
            wait_for(lambda: _count(fac, prefix) >= 6, 20, "the MINOR samples")
            wait_for(lambda: set(codes) <= set(service.names()), 20, "listed")
        wait_for(lambda: _count(fac, prefix) >= 9, 20, "a gap row per channel")
        end = time.time()
        names = json.dumps(list(codes)).encode()
        at = json.loads(service.get(f"data/getDataAtTime?at={iso(end)}", names)[1])
        for name in codes:
            (answer,) = json.loads(service.data(name, end - 600, end, "json")[1])
            assert [d["val"] for d in answer["data"]] == [7, 8, None], name
            # alarm status as the EAA serves it over PVA: alarm.status as the source sent
            # it (DBRAlarm.convertPVAlarm); a gap row INVALID (3) with status CLIENT (7)
            assert [(d["severity"], d["status"]) for d in answer["data"]] == [
                (0, 0),
                (1, 1),
                (3, 7),
            ]
            assert at[name]["val"] is None and at[name]["severity"] == 3


def test_hostile_requests_are_bounded_in_work_and_size(
    factory_process: StartFactory, network: Network, tmp_path: Any
) -> None:
    """Campaign 3, findings 2, 3, 5 and 10: each refusal a 4xx, the service unharmed.

    Before: ``(.|.|.)*!`` never answered (Python's backtracking re on the event loop), a
    200 MB body was read whole before its 413, a list nested 100,000 deep was a 500,
    X-Forwarded-For from loopback passed ``access.read``, ``optimized_N`` past 100,000
    bins was a 503 and ``mean_1`` past 1e6 bins a 500.
    """
    import http.client
    import threading

    import psutil

    fac = factory_process()
    prefix = fac.create("collector", "c", {"channels": ["NO:SOURCE:HERE"]})
    for k in range(30):
        push(fac, prefix, f"name_that_is_long_{k:06d}", "1", repr(1.7e9 + k))
    config = tmp_path / "retrieval.yaml"
    config.write_text("refresh: 0.5\n")
    with Service(network, "--collector", prefix, "--config", str(config)) as service:
        wait_for(lambda: len(service.names()) == 31, 20, "the channels listed")  # (+ its source)
        # a backtracking regex answers at once, and others are answered meanwhile
        answers: list[int] = []
        slow = threading.Thread(
            target=lambda: answers.append(service.get("bpl/getMatchingPVs?regex=(.|.|.)*!")[0])
        )
        slow.start()
        assert service.get("bpl/getAllPVs")[0] == 200
        slow.join(10)
        assert answers == [200]
        status, body = service.get("bpl/getMatchingPVs?regex=(a)%5C1")  # a backreference
        assert status == 400 and b"RE2" in body
        # bodies: refused by their declared length, or as they are read; depth bounded
        rss = psutil.Process(service.process.pid).memory_info().rss
        connection = http.client.HTTPConnection("127.0.0.1", service.port, timeout=30)
        connection.putrequest("POST", "/retrieval/data/getDataAtTime")
        connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        piece = b"[" + b'"x",' * 250_000  # 1 MB a chunk, never a whole list
        try:
            for _ in range(200):
                connection.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        except OSError:
            pass  # refused mid-body: the service closed the connection
        reply = connection.getresponse()
        assert reply.status == 413, reply.read()
        connection.close()
        growth = psutil.Process(service.process.pid).memory_info().rss - rss
        assert growth < 50e6, f"the service grew {growth / 1e6:.0f} MB for a refused body"
        status, _ = service.get("data/getDataAtTime", b"[" * 100_000 + b"]" * 100_000)
        assert status in (400, 413)
        status, body = service.get("data/getDataAtTime", b"[" * 50_000 + b"]" * 50_000)
        assert status == 400 and b"nested too deep" in body, body
        # requests that can never succeed are 4xx, never 5xx
        name = "name_that_is_long_000001"
        status, body = service.data(f"mean_1({name})", 0, 1.7e9 + 100)
        assert status == 400 and b"bins" in body
        status, body = service.data(f"optimized_200000({name})", 1.7e9, 1.7e9 + 100)
        assert status == 200, body
    # proxy headers are believed only from configured proxies
    config.write_text('refresh: 0.5\naccess: {read: ["10.0.0.0/8"]}\n')
    with Service(network, "--collector", prefix, "--config", str(config)) as service:
        request = urllib.request.Request(
            f"http://127.0.0.1:{service.port}/retrieval/bpl/getAllPVs",
            headers={"X-Forwarded-For": "10.1.2.3"},
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        refused.value.close()  # (its socket)
        assert refused.value.code == 403


def test_connections_that_trickle_their_headers_are_cut_and_others_are_served(
    factory_process: StartFactory, network: Network
) -> None:
    """Campaign 3, finding 9: 1,100 trickling connections stayed open for 60 s."""
    import select

    from epics_collector.web._serve import HEADER_TIMEOUT

    fac = factory_process()
    with Service(network, "--factory", fac.prefix) as service:
        trickling = []
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", service.port), timeout=10)
            sock.sendall(b"GET /retrieval/bpl/getAllPVs HTTP/1.1\r\nHost: x\r\n")  # never ends
            trickling.append(sock)
        assert service.get("bpl/getAllPVs")[0] == 200  # others are answered meanwhile
        deadline = time.monotonic() + HEADER_TIMEOUT + 10
        open_ = list(trickling)
        while open_ and time.monotonic() < deadline:
            ready, _, _ = select.select(open_, [], [], 1.0)
            for sock in ready:
                if sock.recv(1024) == b"":  # closed by the service
                    open_.remove(sock)
        for sock in trickling:
            sock.close()
        assert not open_, f"{len(open_)} trickling connections still open"
