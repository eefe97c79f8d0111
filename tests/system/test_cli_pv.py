"""``get``/``put``/``monitor``/``call``: pvget-like tools on p4p, against the sim IOC, devices."""

from __future__ import annotations

import json
import re

import pytest
from tests.conftest import cli, wait_published

from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system
STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00"


def ok(*args: str) -> list[str]:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    assert "\x1b[" not in result.stdout  # no colours into a pipe
    return result.stdout.splitlines()


def refused(*args: str, code: int = 1) -> str:
    """One line on stderr and ``code``: 1 the PV or network said no, 2 a bad value."""
    result = cli(*args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    return result.stderr


def test_get_scalars_enums_and_alarms(sim_ioc: SimIoc) -> None:
    p = sim_ioc.prefix
    counter, beam, width = ok("get", f"{p}Counter", f"{p}BeamMode", f"{p}Image:Width")
    assert re.fullmatch(rf"{p}Counter  {STAMP}  \d+\.0", counter), counter
    assert re.fullmatch(rf"{p}BeamMode  {STAMP}  (Auto|Manual)", beam), beam
    assert width.endswith("  128")
    assert "no answer within 1 s" in refused("get", f"{p}NoSuchPV", "--timeout", "1")


def test_put_by_enum_name_number_and_array(sim_ioc: SimIoc) -> None:
    p = sim_ioc.prefix
    old, new = ok("put", f"{p}BeamMode", "Manual")
    assert old.startswith(f"Old : {p}BeamMode") and new.endswith("  Manual")
    assert ok("put", f"{p}BeamMode", "1")[1].endswith("  Auto")  # by index too
    assert "'Nope' is not one of ['Manual', 'Auto']" in refused(
        "put", f"{p}BeamMode", "Nope", code=2
    )
    assert ok("put", f"{p}Setpoint", "12.5")[1].endswith("  12.5")
    assert "give one value, not 2" in refused("put", f"{p}Setpoint", "1", "2", code=2)


def test_put_arrays_and_refusals_from_a_device(device_process, prefix) -> None:
    device_process("counter", prefix, {"step": 2})
    assert "INVALID" not in ok("get", f"{prefix}Count")[0]  # 0 counted, not undefined
    ok("put", f"{prefix}Step", "3")
    assert ok("get", f"{prefix}Step")[0].endswith("  3")
    error = refused("put", f"{prefix}Step", "0")
    assert f"{prefix}Step: put to Step refused: 0 is below" in error  # said once


def test_monitor_prints_each_update_until_count(sim_ioc: SimIoc) -> None:
    lines = ok("monitor", f"{sim_ioc.prefix}Counter", "--count", "4")
    values = [float(line.split()[-1]) for line in lines]
    assert len(values) == 4 and values == sorted(values) and len(set(values)) == 4


def test_call_and_tables_of_a_collector(device_process, prefix, ctx, sim_ioc: SimIoc) -> None:
    config = {"channels": [{"pv": f"{sim_ioc.prefix}Counter", "alias": "n"}], "autostart": True}
    device_process("collector", prefix, config)
    wait_published(ctx, prefix, "n")
    header, row = ok("get", f"{prefix}Channels")[1:3]
    assert header.split()[:4] == ["alias", "pv", "connected", "count"]
    assert row.split()[:3] == ["n", f"{sim_ioc.prefix}Counter", "True"]
    answer = ok("call", f"{prefix}Push", "channel=note", "value=4.5")
    assert answer and "note" in answer[0]
    table = ok("get", f"{prefix}note:Table")
    assert table[1].split() == ["time", "value", "severity", "status"]
    assert float(table[2].split()[1]) == 4.5
    assert "KEY=VALUE" in cli("call", f"{prefix}Push", "oops").stderr
    assert "call refused" in refused("call", f"{prefix}Push", "channel=", "value=x")
    assert json.loads(ok("get", f"{prefix}Config")[0].split("  ", 2)[2])["autostart"] is True
