"""Across subnets through p4p's PVA gateway: beamline / gateway / office namespaces.

The deployment kit under ``deploy/`` is what runs here, its addresses mapped to the
test's (10.10.1.x -> 198.18.1.x beamline, 10.20.1.x -> 198.18.2.x office). Client code
in the office is unchanged: it only sets EPICS_PVA_ADDR_LIST (or EPICS_PVA_NAME_SERVERS)
to the gateway. Skips where namespaces are not permitted.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.system._netns import CA_PORT, SEARCH_PORT, Host, namespaces, run_on, run_python

from epics_collector.factory import FactoryConfig
from epics_collector.process import FactoryProcess, ManagedProcess
from epics_collector.pva import Network
from epics_collector.retrieval import RetrievalConfig
from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system
KIT = Path(__file__).parents[2] / "deploy"
BEAMLINE, GATEWAY_BL, GATEWAY_OFFICE, OFFICE = (
    "198.18.1.1",
    "198.18.1.2",
    "198.18.2.2",
    "198.18.2.1",
)
OFFICE_SCRIPT = str(Path(__file__).with_name("netns_office.py"))


def _mapped(text: str, operators: str) -> str:
    """Kit text with the test's addresses; ``operators`` is the operators' console."""
    text = text.replace('"10.20.1.10"', f'"{operators}"')
    return text.replace("10.10.1.", "198.18.1.").replace("10.20.1.", "198.18.2.")


def _kit(directory: Path, operators: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name in ("pvagw.conf", "collector.acf", "collector.pvlist"):
        (directory / name).write_text(_mapped((KIT / "gateway" / name).read_text(), operators))
    (directory / "factory.yaml").write_text(
        _mapped((KIT / "factory" / "factory.yaml").read_text(), operators)
    )
    return directory


def _office(name_servers: bool = False) -> Network:
    """The office's EPICS network: the gateway by unicast, or as a TCP name server."""
    variables = {
        "EPICS_PVA_AUTO_ADDR_LIST": "NO",
        "EPICS_PVA_BROADCAST_PORT": str(SEARCH_PORT),
        "EPICS_PVA_ADDR_LIST": "" if name_servers else GATEWAY_OFFICE,
    }
    if name_servers:
        variables["EPICS_PVA_NAME_SERVERS"] = f"{GATEWAY_OFFICE}:5075"
    return Network(variables, useenv=False)


@contextlib.contextmanager
def _segments(tmp_path: Path, operators: str) -> Iterator[dict[str, Host]]:
    """Beamline (IOC, factory), gateway (pvagw, the kit's config), office namespaces."""
    config = _kit(tmp_path / "kit", operators)
    with namespaces() as made:
        bl, gw, office = made.add("bl"), made.add("gw"), made.add("of")
        made.link(bl, BEAMLINE, gw, GATEWAY_BL)
        made.link(gw, GATEWAY_OFFICE, office, OFFICE)
        beamline = Host(bl, Network.host("198.18.1.255", SEARCH_PORT, CA_PORT))
        hosts = {"beamline": beamline, "gateway": Host(gw, beamline.network)}
        hosts["office"] = Host(office, _office())
        gateway = ManagedProcess(
            "p4p.gw", [str(config / "pvagw.conf")], launcher=hosts["gateway"].launcher, env={}
        )
        with (
            SimIoc("BL:SIM:", beamline.env(), launcher=beamline.launcher),
            FactoryProcess(
                "BL:FAC:",
                data_dir=tmp_path / "bl",
                config=config / "factory.yaml",
                env=beamline.env(),
                launcher=beamline.launcher,
            ),
            gateway,
        ):
            gateway.wait_ready(lambda: "Setup GW clients to ignore GW servers" in gateway.output())
            yield hosts


def test_the_kit_is_valid() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "p4p.gw", "--test-config", str(KIT / "gateway" / "pvagw.conf")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0 and "Configuration valid" in done.stderr, done.stderr
    FactoryConfig.model_validate(yaml.safe_load((KIT / "factory" / "factory.yaml").read_text()))
    RetrievalConfig.model_validate(
        yaml.safe_load((KIT / "retrieval" / "retrieval.yaml").read_text())
    )
    _check_unit("epics-collector-factory.service", "factory")
    _check_unit("epics-collector-retrieval.service", "retrieval")


def _check_unit(unit_name: str, command: str) -> None:
    """Every option a systemd unit's ExecStart gives is one the command takes."""
    help_text = subprocess.run(
        [sys.executable, "-m", "epics_collector", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    unit = (KIT / "systemd" / unit_name).read_text()
    start = next(line for line in unit.splitlines() if line.startswith("ExecStart="))
    assert f"epics-collector {command} " in start, start
    for option in (word for word in start.split() if word.startswith("--")):
        assert option in help_text, (unit_name, option)


def _cli(
    host: Host, *args: str, network: Network | None = None
) -> subprocess.CompletedProcess[str]:
    env = (network or host.network).environ()
    return run_python(host, "-m", "epics_collector", *args, env=env, timeout=60)


# About 30 s alone (namespaces, a gateway, a factory, a dozen CLI runs and the office's
# script, which may take 180 s itself); beside two CPU hogs it took over 60 s.
@pytest.mark.timeout(240)
def test_an_office_operator_drives_the_beamline_through_the_gateway(tmp_path: Path) -> None:
    with _segments(tmp_path, operators=OFFICE) as hosts:
        office = hosts["office"]
        summary = json.loads(run_on(office, OFFICE_SCRIPT, "full", timeout=180))
        listed = _cli(office, "ls", "--factory", "BL:FAC:")
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split()[:3] == ["name", "type", "prefix"]  # piped: header only
        # name servers only: TCP search, no UDP at all; a factory and a device are found
        by_tcp = _office(name_servers=True)
        found = _cli(office, "get", "BL:SIM:Counter", network=by_tcp)
        made = _cli(office, "create", "counter", "c1", "--factory", "BL:FAC:", network=by_tcp)
        assert made.returncode == 0 and made.stdout == "BL:FAC:c1:\n", made.stderr
        # (the gateway may have searched the name before it existed: its next search
        # upstream can be seconds away, as for any client of a new server)
        state = _cli(office, "get", "BL:FAC:c1:State", "--timeout", "20", network=by_tcp)
        assert state.returncode == 0 and state.stdout.rstrip().endswith("Idle"), state.stderr
        assert found.returncode == 0 and found.stdout.startswith("BL:SIM:Counter  "), found.stderr
        # never through the gateway, even for an operator: a feedback target
        target = _cli(office, "put", "BL:SIM:Setpoint", "5")
        # the gateway lets an operator call Create; the factory's own policy refuses a
        # feedback device, and it sees the request coming from the gateway's address
        pid = json.dumps(
            {
                "inputs": {"rb": "BL:SIM:Readback"},
                "trigger": {"period": 0.5},
                "processor": {"name": "pid", "params": {"setpoint": 1.0}},
                "feedback": [
                    {"output": "output", "target": "BL:SIM:Setpoint", "low": 0, "high": 2}
                ],
            }
        )
        loop = _cli(office, "create", "processing", "pid", "-f", "BL:FAC:", "--config", pid)
    history = summary["history"]
    assert len(history) >= 20 and history == sorted(history) and len(set(history)) == len(history)
    assert summary["binned_max"] == max(history)
    assert summary["snapshots"] >= 1 and summary["frame"] == [96, 128]
    assert summary["export"].endswith("/scan/scan.h5") and "note" in summary["push"]
    assert len(summary["outputs"]) >= 3 and summary["ophyd_count"] >= 20
    assert summary["before"] == [] and summary["left"] == []
    assert loop.returncode == 1 and "access denied" in loop.stderr, loop.stderr
    assert f"@{GATEWAY_BL} may not" in loop.stderr  # the device sees the gateway, not us
    assert target.returncode == 1 and "access denied" in target.stderr, target.stderr
    assert len(target.stderr.strip().splitlines()) == 1 and "BL:SIM:Setpoint" in target.stderr


def test_an_office_host_that_is_no_operator_reads_but_is_denied_control(tmp_path: Path) -> None:
    with _segments(tmp_path, operators="198.18.2.99") as hosts:
        office = hosts["office"]
        created = _cli(office, "create", "counter", "c1", "--factory", "BL:FAC:")
        denied = json.loads(run_on(office, OFFICE_SCRIPT, "denied", timeout=120))
        read = _cli(office, "get", "BL:FAC:Devices")
    assert created.returncode == 1, created.stderr
    line = created.stderr.strip()
    assert len(line.splitlines()) == 1 and "Traceback" not in line
    assert "BL:FAC:Create: access denied" in line and "permission denied by gateway" in line
    assert denied["type"] == "AccessDeniedError" and "BL:FAC:Create" in denied["text"]
    assert read.returncode == 0 and "name" in read.stdout
