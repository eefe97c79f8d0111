"""The Archiver Appliance management API, read by the site tools built on it.

aaclient (``aagrep``, ``aaget``, ``aaget --how plot``) and aapy's ``AaRestClient``,
each in its own process, against a retrieval service following a real factory whose
collectors record a real IOC.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from tests.clients.retrieval import Service, iso
from tests.clients.run import aapy_decode, aapy_rest
from tests.conftest import FactoryHandle

from epics_collector.process import wait_for
from epics_collector.pva import Network
from epics_collector.sim import PvaSource, SimIoc

pytestmark = pytest.mark.system


@dataclass
class Site:
    fac: FactoryHandle
    rec: str  # the recording collector's prefix
    idle: str  # a collector that does not record (its PV: Paused)
    p: str  # the IOC's prefix
    gone: str  # a PV that connected, then went away
    service: Service


def _channels(fac: FactoryHandle, prefix: str) -> dict[str, dict[str, Any]]:
    table = cast(Any, fac.raw_get(prefix + "Channels"))["value"]
    return {
        str(alias): {name: table[name][k] for name in table.keys()}
        for k, alias in enumerate(table["alias"])
    }


@pytest.fixture(scope="module")
def site(
    sim_ioc: SimIoc, network: Network, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """One site for the module's tests (each leaves it recording, as it found it)."""
    fac = FactoryHandle(network, f"F{uuid.uuid4().hex[:8]}:", tmp_path_factory.mktemp("f"))
    fac.start()
    try:
        yield from _site(fac, sim_ioc, network)
    finally:
        fac.close()


def _site(fac: FactoryHandle, sim_ioc: SimIoc, network: Network) -> Iterator[Site]:
    p = sim_ioc.prefix
    gone_prefix = f"G{uuid.uuid4().hex[:6]}:"
    gone = gone_prefix + "0000"
    with PvaSource(gone_prefix, network.environ(), channels=1, rate=10):
        rec = fac.create(
            "collector",
            "rec",
            {
                "channels": [
                    {"pv": p + "Temperature", "alias": "temp"},
                    {"pv": p + "BeamMode", "alias": "mode"},
                    {"pv": p + "Waveform", "alias": "wave", "kind": "waveform"},
                    {"pv": p + "Missing", "alias": "missing"},
                    {"pv": gone, "alias": "gone"},
                ],
                "autostart": True,
                "connect_timeout": 1,
            },
        )
        wait_for(lambda: _channels(fac, rec)["gone"]["connected"], 20, "the source connected")
    wait_for(lambda: not _channels(fac, rec)["gone"]["connected"], 20, "the source's loss")
    idle = fac.create("collector", "idle", {"channels": [{"pv": p + "Pressure"}]})
    config = fac.data_dir.parent / "retrieval.yaml"
    config.write_text(f"archiving: {{factories: ['{fac.prefix}'], collector: arch}}\nrefresh: 1\n")
    with Service(network, "--factory", fac.prefix, "--config", str(config)) as service:
        wait_for(lambda: {p + "Pressure", gone} <= set(service.names()), 30, "listed")
        yield Site(fac, rec, idle, p, gone, service)


def _aa(tmp_path: Path, port: int, tool: str, *args: str) -> list[str]:
    """Lines an aaclient command prints (its config file names the service)."""
    (tmp_path / "aaclient.conf").write_text(f"[DEFAULT]\nhost = 127.0.0.1\nport = {port}\n")
    done = subprocess.run(
        [str(Path(sys.executable).with_name(tool)), *args],
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TZ": "UTC"},
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    return done.stdout.decode().splitlines()


def _printed(lines: list[str]) -> list[tuple[float, float]]:
    """(seconds of the day, value) of each line ``aaget`` printed for one PV.

    A line is ``[date] HH:MM:SS.ffffff value [severity status]``.
    """
    found = []
    for line in lines:
        words = line.split()
        at = next(k for k, word in enumerate(words) if ":" in word) + 1
        hours, minutes, seconds = words[at - 1].split(":")
        found.append((int(hours) * 3600 + int(minutes) * 60 + float(seconds), float(words[at])))
    return found


def _raw_rows(fac: FactoryHandle, prefix: str, alias: str) -> dict[str, np.ndarray]:
    """Every row of a channel, from its collector's own Query."""
    from p4p.nt import NTURI

    arguments = {"alias": alias, "start": "0", "end": "4e9", "points": "100000"}
    arguments["operator"] = "raw"
    uri = NTURI([(key, "s") for key in arguments])
    value = fac.raw_rpc(prefix + "Query", uri.wrap(prefix + "Query", kws=arguments))
    return {name: np.asarray(value["value"][name]) for name in value["value"].keys()}


def caplotbinning(stamps: np.ndarray, values: np.ndarray, n: int) -> list[tuple[int, float]]:
    """CAPlotBinning.java's rows, by hand: (whole seconds, value), for rows all in range."""
    bins: dict[int, list[tuple[float, float]]] = {}
    for stamp, value in zip(stamps, values, strict=True):
        bins.setdefault(int(stamp) // n, []).append((stamp, value))
    out: list[tuple[int, float]] = []
    for number in sorted(bins):
        events = bins[number]
        if len(events) <= 2:
            out += [(int(stamp), value) for stamp, value in events]
            continue
        finite = [v for _, v in events if v == v]
        base = number * n
        out += [
            (base, events[0][1]),
            (base + int(0.25 * n), min(finite)),
            (base + int(0.5 * n), max(finite)),
            (base + int(0.75 * n), events[-1][1]),
        ]
    return out


def test_aaclient_finds_lists_reads_and_plots_the_archive(site: Site, tmp_path: Path) -> None:
    p, fac = site.p, site.fac
    wait_for(lambda: _channels(fac, site.rec)["temp"]["count"] >= 40, 20, "rows")
    fac.ctx.put(site.rec + "Stop", 1)  # (no row comes after: both reads see the same rows)
    wait_for(lambda: str(fac.ctx.get(site.rec + "State")) == "Stopped", 10, "stopped")
    port = site.service.port
    found = _aa(tmp_path, port, "aagrep", "-W", f"{p}*")
    assert {p + "Temperature", p + "BeamMode", p + "Waveform", p + "Pressure"} <= set(found)
    assert all(name.startswith(p) for name in found)
    assert _aa(tmp_path, port, "aagrep", "-R", f"{p}Temp.*") == [p + "Temperature"]

    rows = _raw_rows(fac, site.rec, "temp")
    times, values = rows["time"], rows["value"]
    raw = _printed(_aa(tmp_path, port, "aaget", "--utc", "--start=-1h", p + "Temperature"))
    assert [v for _, v in raw] == pytest.approx(list(values), abs=1e-12)
    assert [s for s, _ in raw] == pytest.approx(list(times % 86400), abs=2e-6)

    # --how plot over an hour: caplotbinning_4 (3600 s in 1000 points), as the EAA bins
    plot = _aa(tmp_path, port, "aaget", "--utc", "--start=-1h", "--how", "plot", p + "Temperature")
    expected = caplotbinning(times, values, math.ceil(3600 / 1000))
    got = _printed(plot)
    assert len(got) == len(expected) and len(got) < len(times)
    assert [v for _, v in got] == pytest.approx([v for _, v in expected], abs=1e-12)
    assert [s for s, _ in got] == [float(s % 86400) for s, _ in expected]
    fac.ctx.put(site.rec + "Start", 1)  # (as the other tests expect it)
    wait_for(lambda: str(fac.ctx.get(site.rec + "State")) == "Recording", 10, "recording")


def test_aapy_and_site_scripts_read_every_management_endpoint(site: Site) -> None:
    p, service = site.p, site.service
    temperature, pressure, unknown = p + "Temperature", p + "Pressure", p + "NoSuchPV"
    wait_for(
        lambda: (
            json.loads(service.get(f"bpl/getPVStatus?pv={temperature}")[1])[0]["status"]
            == "Being archived"
        ),
        20,
        "the collector's State read",
    )
    (
        listed,
        info,
        wave_info,
        enum_info,
        status,
        statuses,
        never,
        disconnected,
        missing,
    ) = aapy_rest(
        service.port,
        "get_all_pvs=" + json.dumps([f"{p}*"]),
        "get_pv_type_info=" + json.dumps(temperature),
        "get_pv_type_info=" + json.dumps(p + "Waveform"),
        "get_pv_type_info=" + json.dumps(p + "BeamMode"),
        "get_pv_status=" + json.dumps(temperature),
        "get_pv_statuses=" + json.dumps([[temperature, pressure, unknown]]),
        "get_never_connected_pvs",
        "get_currently_disconnected_pvs",
        "get_pv_type_info=" + json.dumps(unknown),
    )
    assert temperature in listed and pressure in listed and listed == sorted(listed)
    assert info["pvName"] == temperature and info["DBRType"] == "DBR_SCALAR_DOUBLE"
    assert info["units"] == "degC" and info["precision"] == "3.0"
    assert info["upperAlarmLimit"] == "21.9" and info["lowerDisplayLimit"] == "15.0"
    assert info["scalar"] == "true" and info["elementCount"] == "1"
    assert info["samplingMethod"] == "MONITOR" and info["paused"] == "false"
    assert info["applianceIdentity"] == site.rec and info["creationTime"].endswith("Z")
    assert all(isinstance(v, str) for v in info.values() if not isinstance(v, (list, dict)))
    assert wave_info["DBRType"].startswith("DBR_WAVEFORM") and int(wave_info["elementCount"]) > 1
    assert enum_info["DBRType"] == "DBR_SCALAR_ENUM"
    (one,) = status
    assert one["status"] == "Being archived" and one["connectionState"] == "true"
    assert one["appliance"] == site.rec and one["lastEvent"] != "Never"
    assert [s["status"] for s in statuses] == ["Being archived", "Paused", "Not being archived"]
    assert [s["pvName"] for s in statuses] == [temperature, pressure, unknown]
    assert never == [p + "Missing"]
    assert disconnected == [site.gone]
    assert missing == {"error": 404}

    # what aapy does not wrap: archivedPVs, unarchivedPVs, details, reports, versions
    names = json.dumps([temperature, unknown, {"pv": pressure}]).encode()
    assert service.mgmt("archivedPVs", names, "application/json") == [temperature, pressure]
    form = f"pv={temperature},{unknown}".encode()
    assert service.mgmt("unarchivedPVs", form, "application/x-www-form-urlencoded") == [unknown]
    text = f"{temperature}\n{unknown}\n".encode()
    assert service.mgmt("archivedPVs", text, "text/plain") == [temperature]
    paused = service.mgmt("getPausedPVsReport")
    assert [r["pvName"] for r in paused] == [pressure] and paused[0]["instance"] == site.idle
    details = {d["name"]: d["value"] for d in service.mgmt(f"getPVDetails?pv={site.gone}")}
    assert details["Is connected"] == "false" and details["Times connected"] == "1"
    reasons = service.mgmt("getNeverConnectedPVs")
    assert reasons[0]["currentState"] and reasons[0]["appliance"] == site.rec
    versions = service.mgmt("getVersions")
    assert set(versions) == {f"{c}_version" for c in ("mgmt", "retrieval", "engine", "etl")}
    appliance = service.mgmt("getApplianceInfo")
    base = f"http://127.0.0.1:{service.port}"
    assert appliance["mgmtURL"] == base + "/mgmt/bpl"
    assert appliance["retrievalURL"] == base + "/retrieval/bpl"
    assert appliance["dataRetrievalURL"] == base + "/retrieval"
    assert json.loads(service.get("bpl/getVersion")[1])["version"] == appliance["version"]
    assert service.mgmt(f"getAllPVs?regex={p}Pres.*") == [pressure]
    assert service.mgmt(f"getAllPVs?pv={p}*&limit=2") == listed[:2]
    request = urllib.request.Request(
        base + "/mgmt/bpl/getApplianceInfo", headers={"Host": "archiver.example:80"}
    )
    with urllib.request.urlopen(request, timeout=10) as reply:  # the host the client asked
        assert json.loads(reply.read())["mgmtURL"] == "http://archiver.example:80/mgmt/bpl"


def test_get_data_for_pvs_gives_each_pvs_answer_in_json_and_pb(site: Site) -> None:
    p, service = site.p, site.service
    pvs = [p + "Temperature", p + "BeamMode", p + "Waveform"]
    wait_for(lambda: _channels(site.fac, site.rec)["temp"]["count"] >= 20, 20, "rows")
    end = time.time() - 1.0  # (a past range: the answers cannot grow meanwhile)
    start = end - 3600
    times = f"from={iso(start)}&to={iso(end)}"
    singles = [json.loads(service.data(pv, start, end, "json")[1])[0] for pv in pvs]
    query = "&".join(f"pv={pv}" for pv in pvs)
    status, body = service.get(f"data/getDataForPVs.json?{query}&{times}")
    assert status == 200, body
    assert json.loads(body) == singles
    status, body = service.get(f"data/getDataForPVs.raw?{query}&{times}")
    assert status == 200, body
    chunks = aapy_decode(body)
    assert [c["pvname"] for c in chunks] == pvs
    for chunk, single in zip(chunks, singles, strict=True):
        assert len(chunk["events"]) == len(single["data"])
    posted = json.dumps(pvs[:2]).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{service.port}/retrieval/data/getDataForPVs.json?pp=mean_1&{times}",
        data=posted,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        means = json.loads(reply.read())
    expected = json.loads(service.data(f"mean_1({pvs[0]})", start, end, "json")[1])[0]
    assert means[0] == expected and means[1]["meta"]["name"] == pvs[1]
    status, body = service.get(f"data/getDataForPVs.json?pv={p}NoSuchPV&pv={pvs[0]}&{times}")
    assert status == 404 and b"NoSuchPV" in body  # refused whole, before any byte


def _status(service: Service, pv: str) -> str:
    return str(service.mgmt(f"getPVStatus?pv={pv}")[0]["status"])


def test_archive_pause_resume_and_delete_as_the_appliance_does(
    site: Site, network: Network, tmp_path: Path
) -> None:
    """archivePV makes the factory's archiving collector, then adds to it; pause first,
    then delete; a host without the right is refused."""
    p, service = site.p, site.service
    slow, counter = p + "Slow", p + "Counter"
    answer = aapy_rest(service.port, "archive_pv=" + json.dumps([slow, 1.0, "MONITOR"]))[0]
    assert answer == [{"pvName": slow, "status": "Archive request submitted"}]
    wait_for(lambda: _status(service, slow) == "Being archived", 20, "Slow archived")
    arch = site.fac.prefix + "arch:"
    assert site.fac.row("arch")["type"] == "collector"
    body = json.dumps([{"pv": counter, "samplingmethod": "SCAN", "samplingperiod": "0.5"}])
    posted = service.mgmt("archivePV", body.encode(), "application/json")
    assert posted == [{"pvName": counter, "status": "Archive request submitted"}]
    assert service.mgmt(f"archivePV?pv={slow}") == [{"pvName": slow, "status": "Already archived"}]
    (policy,) = service.mgmt(f"archivePV?pv={p}Phase&policy=fast")
    assert "no archiving policies" in policy["validation"]
    wait_for(lambda: _status(service, counter) == "Being archived", 20, "Counter archived")
    info = service.mgmt(f"getPVTypeInfo?pv={counter}")
    assert info["samplingMethod"] == "SCAN" and info["samplingPeriod"] == "0.5"
    assert info["applianceIdentity"] == arch
    refused = service.mgmt(f"deletePV?pv={slow}")  # the appliance's rule: pause first
    assert "pause recording first" in refused[0]["validation"]
    assert service.mgmt(f"pauseArchivingPV?pv={slow}") == [{"pvName": slow, "status": "ok"}]
    assert _status(service, slow) == "Paused"
    assert "already paused" in service.mgmt(f"pauseArchivingPV?pv={slow}")[0]["validation"]
    assert service.mgmt(f"resumeArchivingPV?pv={slow}") == [{"pvName": slow, "status": "ok"}]
    wait_for(lambda: _status(service, slow) == "Being archived", 20, "Slow resumed")
    service.mgmt(f"pauseArchivingPV?pv={slow}")
    deleted = service.mgmt(f"deletePV?pv={slow}&deleteData=true")
    assert deleted == [{"pvName": slow, "status": "ok"}]
    wait_for(lambda: _status(service, slow) == "Not being archived", 20, "Slow deleted")
    assert slow not in [str(a) for a in _table_of(site.fac, arch + "Removed")["pv"]]
    # a host the service's policy does not name for these rights is refused (403)
    config = tmp_path / "locked.yaml"
    config.write_text(
        f"archiving: {{factories: ['{site.fac.prefix}']}}\n"
        "access: {factory: ['10.9.9.9'], control: ['10.9.9.9'], delete: ['10.9.9.9']}\n"
    )
    with Service(network, "--factory", site.fac.prefix, "--config", str(config)) as locked:
        for call in ("archivePV", "pauseArchivingPV", "resumeArchivingPV", "deletePV"):
            status, text = locked.mgmt_reply(f"{call}?pv={counter}")
            assert status == 403 and b"may not" in text, call
    assert _status(service, counter) == "Being archived"  # (nothing changed)
    site.fac.call("Destroy", name="arch")  # (the module's factory outlives the test)


def _table_of(fac: FactoryHandle, pv: str) -> dict[str, list[Any]]:
    value = cast(Any, fac.raw_get(pv))["value"]
    return {name: list(value[name]) for name in value.keys()}
