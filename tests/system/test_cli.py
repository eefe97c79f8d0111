"""The command line: run (foreground device, SIGTERM), schema, config errors, demo."""

import json
import signal
import time
from pathlib import Path

import h5py
import psutil
import pytest
from tests.conftest import cli

from epics_collector.process import ManagedProcess, wait_for

pytestmark = pytest.mark.system


def test_schema_prints_json_schema():
    result = cli("schema", "counter")
    assert result.returncode == 0
    assert json.loads(result.stdout)["properties"]["step"]["type"] == "integer"
    result = cli("schema", "factory")
    assert "access" in json.loads(result.stdout)["properties"]


def test_unknown_type_and_bad_config_exit_2_naming_the_problem(prefix):
    result = cli("run", "nosuch", "--prefix", prefix)
    assert result.returncode == 2
    assert "unknown device type 'nosuch'" in result.stderr
    result = cli("run", "counter", "--prefix", prefix, "--config", '{"stepp": 1}')
    assert result.returncode == 2
    assert "stepp: Extra inputs are not permitted" in result.stderr
    result = cli("run", "counter", "--prefix", prefix, "--config", '{"step": "x"}')
    assert result.returncode == 2
    assert "step:" in result.stderr and "'x'" in result.stderr


def test_run_serves_and_stops_within_2_s_of_sigterm(device_process, prefix, ctx):
    device = device_process("counter", prefix, {"step": 5})
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: ctx.get(prefix + "Count") > 0, 5, "counting")
    assert ctx.get(prefix + "Count") % 5 == 0
    children = psutil.Process(device.process.pid).children(recursive=True)
    started = time.monotonic()
    device.process.popen.send_signal(signal.SIGTERM)
    assert device.process.popen.wait(5) == 0
    assert time.monotonic() - started < 2.0
    assert not [c for c in children if c.is_running()]


def test_demo_runs_and_leaves_a_nexus_file(network, tmp_path):
    """A timed demo; test_signals.py runs it again (Ctrl-C, kill -9) on the same names."""
    args = ["demo", "--duration", "2", "--output", str(tmp_path)]
    demo = ManagedProcess("epics_collector", args, env=network.environ())
    with demo:
        demo.popen.wait(60)
    output = demo.output()
    assert demo.popen.returncode == 0, output
    assert "Stopped cleanly" in output and "Live dashboard (read-only)" in output
    path = Path(output.split("NeXus file: ")[1].splitlines()[0])
    with h5py.File(path) as nexus:  # pyright: ignore[reportGeneralTypeIssues]
        assert len(nexus["entry/channels/counter/value"]) > 0  # type: ignore[arg-type]
    assert len(list(tmp_path.glob("run-*/demo/demo.nxs"))) == 1


def test_factory_and_serve_refuse_bad_input_with_one_line(tmp_path):
    result = cli("factory", "--prefix", "no-colon")
    assert result.returncode == 2 and "ending in ':'" in result.stderr
    (tmp_path / "f.yaml").write_text("max_devices: -1\n")
    result = cli("factory", "--prefix", "F:", "--config", str(tmp_path / "f.yaml"))
    assert result.returncode == 2 and "max_devices" in result.stderr
    result = cli("serve", str(tmp_path / "missing.yaml"))
    assert result.returncode == 2 and "no setup file" in result.stderr
    (tmp_path / "s.yaml").write_text("prefix: 'F:'\ndevices: [{name: c, type: nope}]\n")
    result = cli("serve", str(tmp_path / "s.yaml"))
    assert result.returncode == 2 and "devices.c: unknown device type 'nope'" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_starts_the_declared_devices_and_stops_them(network, ctx, prefix, tmp_path):
    setup = tmp_path / "setup.yaml"
    setup.write_text(
        f"prefix: '{prefix}'\n"
        "factory: {max_devices: 4}\n"
        "devices:\n"
        "  - {name: a, type: counter, config: {step: 3}}\n"
        f"  - {{name: b, type: counter, prefix: '{prefix}other:'}}\n"
    )
    serve = ManagedProcess("epics_collector", ["serve", str(setup)], env=network.environ())
    with serve:
        assert serve.wait_notified(30).startswith("factory ready:")
        table = ctx.get(prefix + "Devices").value
        assert list(table.name) == ["a", "b"] and list(table.prefix)[1] == f"{prefix}other:"
        pids = [int(pid) for pid in table.pid]
        assert json.loads(ctx.get(prefix + "a:Config") + "")["step"] == 3
        assert (tmp_path / "data" / ".factory" / "devices.json").exists()
        assert (tmp_path / "data" / ".factory" / "logs" / "a.log").exists()
    assert serve.popen.returncode == 0
    assert not any(psutil.pid_exists(pid) for pid in pids)


def test_sim_ioc_command_serves_the_sim_records(network, ctx):
    ioc = ManagedProcess(
        "epics_collector", ["sim-ioc", "--prefix", "TCLISIM:"], env=network.environ()
    )
    with ioc:
        assert ioc.wait_notified(30).startswith("sim IOC ready")
        assert ctx.get("TCLISIM:Waveform").shape == (1000,)
