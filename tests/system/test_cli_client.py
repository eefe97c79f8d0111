"""Client commands of the CLI against a real factory: output, JSON, exit codes."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from tests.conftest import FactoryHandle, cli

from epics_collector.process import wait_until
from epics_collector.pva import Network
from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system


def ok(*args: str) -> str:
    result = cli(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


def refused(code: int, *args: str) -> str:
    """Run a command that must fail: one line on stderr, no traceback."""
    result = cli(*args)
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    return result.stderr


def test_the_client_commands(
    factory_process: Callable[..., FactoryHandle], sim_ioc: SimIoc, tmp_path
) -> None:
    fac = factory_process().prefix
    share = tmp_path / "share"
    share.mkdir()
    config = json.dumps(
        {
            "channels": [
                {"pv": sim_ioc.prefix + "Counter", "alias": "n"},
                {"pv": sim_ioc.prefix + "Temperature", "alias": "t"},  # PREC 3
            ],
            "upload": {"kind": "directory", "target": str(share)},
        }
    )
    prefix = ok("create", "collector", "col", "--factory", fac, "--config", config).strip()
    assert prefix == f"{fac}col:"
    listing = json.loads(ok("ls", "--factory", fac, "--json"))
    assert [(d["name"], d["type"], d["state"]) for d in listing] == [("col", "collector", "Idle")]
    shown = ok("ls", "--factory", fac)
    assert "col" in shown and "Idle" in shown

    assert "Recording" in ok("start", "col", "--factory", fac)  # by name ...
    # (the counter posts at 10 Hz: one command's start-up later, it has rows)
    assert wait_until(lambda: len(json.loads(ok("history", prefix, "n", "--json"))) >= 5, 10)
    assert "Stopped" in ok("stop", prefix)  # ... or by prefix

    rows = json.loads(ok("history", prefix, "n", "--json"))
    values = [row["value"] for row in rows]
    assert values == sorted(values) and set(rows[0]) == {"time", "value", "severity", "status"}
    table = list(
        csv.DictReader(io.StringIO(ok("history", prefix, sim_ioc.prefix + "Counter", "--csv")))
    )
    assert [float(r["value"]) for r in table] == values
    assert len(json.loads(ok("history", prefix, "n", "--json", "--last", "2"))) == 2
    shown = ok("history", prefix, "n")
    lines = shown.splitlines()  # piped: a header line, then one plain line per row
    assert lines[0].split() == ["time", "value", "severity", "status"]
    assert len(lines) == len(rows) + 1 and "+00:00" in lines[1]
    # values as the source's PREC asks (the counter's is 0, the temperature's 3)
    assert all("." not in line.split()[1] for line in lines[1:]), lines[:3]
    temperatures = ok("history", prefix, "t").splitlines()[1:]
    assert temperatures and all(
        len(line.split()[1].partition(".")[2]) == 3 for line in temperatures
    )
    plot = ok("history", prefix, "n", "--plot")
    assert "samples" in plot and "\x1b[" not in plot  # no colour codes into a pipe

    path = ok("export", prefix, "run.h5")
    assert path.endswith("run.h5\n") and path.count("\n") == 1  # the path alone on stdout
    path = path.strip()
    assert path.endswith("run.h5")
    csv_path = ok("export", prefix, "run", "--format", "csv").strip()
    assert csv_path.endswith("run.csv")
    assert ok("upload", prefix).strip().startswith("uploaded run.csv to ")
    assert (share / "run.csv").exists()

    watched = ok("watch", prefix, "--duration", "0.6")
    assert "State" in watched and "Count" in watched and "n" in watched

    assert "destroyed col" in ok("destroy", "col", "--factory", fac)
    assert json.loads(ok("ls", "--factory", fac, "--json")) == []


def test_client_commands_refuse_bad_input_in_one_line(
    factory_process: Callable[..., FactoryHandle],
) -> None:
    fac = factory_process().prefix
    assert "unknown device type 'nope'" in refused(1, "create", "nope", "x", "--factory", fac)
    assert "neither JSON nor YAML" in refused(
        2, "create", "counter", "x", "--factory", fac, "--config", "{bad"
    )
    assert "give --factory" in refused(1, "ls", "--timeout", "0.5")  # no default factory runs
    assert "NOBODY:Types: no answer" in refused(1, "ls", "--factory", "NOBODY:", "--timeout", "0.5")
    assert "no device named 'ghost'" in refused(1, "destroy", "ghost", "--factory", fac)
    assert "no device named 'ghost'" in refused(1, "start", "ghost", "--factory", fac)
    assert "no factory answers at" in refused(1, "start", "ghost", "--timeout", "0.5")
    assert "GHOST:State: no answer" in refused(1, "watch", "GHOST:", "--timeout", "0.5")
    ok("create", "collector", "c", "--factory", fac, "--config", '{"channels": ["A:[x]"]}')
    assert "no channel 'x'; channels: A__x_" in refused(1, "history", f"{fac}c:", "x")
    assert "no upload configured" in refused(1, "upload", f"{fac}c:")
    assert "nothing exported" not in refused(1, "upload", f"{fac}c:")


def test_create_times_out_within_its_timeout_when_a_factory_never_answers(
    network: Network, prefix: str
) -> None:
    """Walkthrough 3, finding 2: a Create waited 60 s, whatever --timeout said."""
    from p4p.nt import NTScalar
    from p4p.server import Server
    from p4p.server.thread import SharedPV

    types = SharedPV(nt=NTScalar("as"), initial=["collector"])
    create = SharedPV(nt=NTScalar("s"), initial="")

    @create.rpc
    def _never(pv: Any, op: Any) -> None:  # no op.done(): the answer never comes
        del pv, op

    providers = {prefix + "Types": types, prefix + "Create": create}
    with Server(providers=[providers], conf=network.server_conf(), useenv=False):
        started = time.monotonic()
        done = cli("create", "collector", "c", "--factory", prefix, "--timeout", "2", timeout=50)
        took = time.monotonic() - started
    assert done.returncode == 1, done.stderr
    assert "no answer within 2 s" in done.stderr, done.stderr
    assert took < 2 + 15, f"took {took:.1f} s"  # the interpreter's start, even under load
