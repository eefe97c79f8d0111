"""Two factories on two "hosts" (network namespaces joined by a veth pair).

The client in host A creates a collector on each factory; both record the sim IOC in
host A, so the one in host B records across the veth link. Skips where namespaces are
not permitted.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.system._netns import CA_PORT, SEARCH_PORT, Host, namespaces, run_on

from epics_collector.process import FactoryProcess, ManagedProcess
from epics_collector.pva import Network
from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system
ADDRESSES = ["198.18.0.1", "198.18.0.2"]  # RFC 2544 benchmarking range; stays in the namespaces
BROADCAST = "198.18.0.255"


@pytest.fixture
def two_hosts() -> Iterator[list[Host]]:
    """Two namespaces joined by a veth pair; deleted after the test."""
    with namespaces() as made:
        names = [made.add("A"), made.add("B")]
        made.link(names[0], ADDRESSES[0], names[1], ADDRESSES[1])
        network = Network.host(BROADCAST, SEARCH_PORT, CA_PORT)
        yield [Host(name, network) for name in names]


@contextlib.contextmanager
def _host_a(a: Host, tmp_path: Path) -> Iterator[SimIoc]:
    """Host A: the sim IOC and a factory HA:FAC: with the default policy."""
    with (
        SimIoc("HA:SIM:", a.env(), launcher=a.launcher) as ioc,
        FactoryProcess("HA:FAC:", data_dir=tmp_path / "a", env=a.env(), launcher=a.launcher),
    ):
        yield ioc


def _trusting(path: Path) -> Path:
    """Host B's factory config: the documented one-line policy trusting the subnet."""
    path.write_text("access: {control: [198.18.0.0/24], factory: [198.18.0.0/24]}\n")
    return path


@contextlib.contextmanager
def _both_hosts(a: Host, b: Host, tmp_path: Path) -> Iterator[SimIoc]:
    """Host A as :func:`_host_a`, and a factory HB:FAC: on host B trusting the subnet."""
    with (
        _host_a(a, tmp_path) as ioc,
        FactoryProcess(
            "HB:FAC:",
            data_dir=tmp_path / "b",
            config=_trusting(tmp_path / "b.yaml"),
            env=b.env(),
            launcher=b.launcher,
        ),
    ):
        yield ioc


def test_a_client_on_host_a_records_host_a_from_both_factories(
    two_hosts: list[Host], tmp_path: Path
) -> None:
    a, b = two_hosts
    with _both_hosts(a, b, tmp_path) as ioc:
        client = str(Path(__file__).with_name("netns_client.py"))
        histories = json.loads(run_on(a, client, ioc.prefix + "Counter", "HA:FAC:", "HB:FAC:"))
        # even a trusted remote host names a destination: no path, URI or credentials
        refused = run_on(a, "-c", _CREATE_WITH_UPLOAD)
        assert "name one of this factory's destinations" in refused, refused
    local, remote = histories["HA:FAC:remote:"], histories["HB:FAC:remote:"]
    assert len(local) >= 5 and len(remote) >= 5
    for history in (local, remote):
        assert history == sorted(history) and len(set(history)) == len(history)
    assert set(local) & set(remote), "both collectors record the same source"


def test_an_untrusted_host_reads_but_controls_nothing_by_default(
    two_hosts: list[Host], tmp_path: Path
) -> None:
    """Host B is not in host A's policy (the default: only host A itself controls)."""
    a, b = two_hosts
    with _host_a(a, tmp_path) as ioc:
        # host A's own client creates a collector and a feedback device
        run_on(
            a, str(Path(__file__).with_name("netns_client.py")), ioc.prefix + "Counter", "HA:FAC:"
        )
        pid = _CREATE_PID.format(setpoint=ioc.prefix + "Setpoint", readback=ioc.prefix + "Readback")
        run_on(a, "-c", pid)
        intruder = str(Path(__file__).with_name("netns_intruder.py"))
        output = run_on(b, intruder, "HA:FAC:", "HA:FAC:remote:", "HA:FAC:pid:", timeout=120)
        results = json.loads(output)
        assert not list((tmp_path / "a").rglob("stolen*")), "an export was written"
    assert results.pop("read") == "ok", "reading is open to every host"
    for operation, outcome in results.items():
        assert "198.18.0.2 may not" in outcome, f"{operation}: {outcome}"


_CREATE_PID = """
import json
from p4p.client.thread import Context
from p4p.nt import NTURI
config = {{"inputs": {{"rb": "{readback}"}}, "trigger": {{"period": 0.5}},
    "processor": {{"name": "pid", "params": {{"setpoint": 1.0}}}},
    "feedback": [{{"output": "output", "target": "{setpoint}", "low": 0, "high": 2}}]}}
uri = NTURI([("type", "s"), ("name", "s"), ("config", "s")])
with Context("pva") as ctx:
    args = {{"type": "processing", "name": "pid", "config": json.dumps(config)}}
    ctx.rpc("HA:FAC:Create", uri.wrap("HA:FAC:Create", kws=args), timeout=60)
"""


_CREATE_WITH_UPLOAD = """
import json
from p4p.client.thread import Context
from p4p.nt import NTURI
config = {"channels": ["X"], "upload": {"kind": "directory", "target": "/tmp"}}
uri = NTURI([("type", "s"), ("name", "s"), ("config", "s")])
args = {"type": "collector", "name": "up", "config": json.dumps(config)}
with Context("pva") as ctx:
    try:
        ctx.rpc("HB:FAC:Create", uri.wrap("HB:FAC:Create", kws=args), timeout=60)
        print("created")
    except Exception as error:
        print(error)
"""


_FETCH = """
import json, sys, time, urllib.request
base = "http://127.0.0.1:%s/retrieval/" % sys.argv[1]
pv = sys.argv[2]
deadline = time.monotonic() + 30
while True:
    status = json.load(urllib.request.urlopen(base + "bpl/getPVStatus?pv=" + pv, timeout=10))
    if len(status[0]["collectors"]) == 2:
        break
    if time.monotonic() > deadline:
        raise SystemExit("timed out after 30 s waiting for both hosts' collectors: %s" % status)
    time.sleep(0.2)  # the next poll (the service refreshes every 5 s)
end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 1))
data = json.load(urllib.request.urlopen(
    base + "data/getData.json?pv=" + pv + "&from=2000-01-01T00:00:00Z&to=" + end, timeout=30))
print(json.dumps({"collectors": status[0]["collectors"], "rows": len(data[0]["data"])}))
"""


def test_one_retrieval_service_answers_for_pvs_recorded_on_either_host(
    two_hosts: list[Host], tmp_path: Path
) -> None:
    a, b = two_hosts
    with _both_hosts(a, b, tmp_path) as ioc:
        client = str(Path(__file__).with_name("netns_client.py"))
        run_on(a, client, ioc.prefix + "Counter", "HA:FAC:", "HB:FAC:")  # a collector on each
        args = ["retrieval", "--factory", "HA:FAC:", "--factory", "HB:FAC:", "--port", "17668"]
        with ManagedProcess("epics_collector", args, env=a.env(), launcher=a.launcher) as service:
            assert service.wait_notified(30).startswith("retrieval on")
            found = json.loads(run_on(a, "-c", _FETCH, "17668", ioc.prefix + "Counter"))
    assert sorted(found["collectors"]) == ["HA:FAC:remote:c", "HB:FAC:remote:c"]
    assert found["rows"] >= 5
