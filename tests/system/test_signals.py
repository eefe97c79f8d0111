"""Ctrl-C like a terminal sends it, and owners killed with SIGKILL: nothing is left running.

A terminal's Ctrl-C sends SIGINT to the whole foreground process group. Each long-running
command is started here as its own group leader and that group gets SIGINT: it must stop
within 10 s, exit 0 without a traceback, and take every process it started with it.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from tests.conftest import _alive

from epics_collector.process import ManagedProcess, wait_for
from epics_collector.pva import Network

pytestmark = pytest.mark.system


def _ctrl_c(process: ManagedProcess, timeout: float = 10.0) -> int:
    """SIGINT to the process group, as a terminal sends it; its exit code.

    Raises if it takes longer than ``timeout`` s or leaves a process it started running.
    """
    descendants = psutil.Process(process.pid).children(recursive=True)
    os.killpg(process.pid, signal.SIGINT)
    try:
        code = process.popen.wait(timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(
            f"still running {timeout} s after Ctrl-C:\n{process.output()}"
        ) from None
    wait_for(lambda: not any(map(_alive, descendants)), 5, "every child stopped")
    return code


@contextmanager
def _started(
    args: list[str], network: Network, ready: str, timeout: float = 60
) -> Iterator[ManagedProcess]:
    """``epics-collector ARGS`` running (ready), always stopped at the end."""
    with ManagedProcess("epics_collector", args, env=network.environ()) as process:
        process.wait_ready(lambda: ready in process.output(), timeout)
        yield process


def _check_clean(process: ManagedProcess, code: int) -> None:
    output = process.output()
    assert code == 0, output
    assert "Traceback" not in output, output


def test_ctrl_c_stops_run(network, prefix, tmp_path):
    args = ["run", "counter", "--prefix", prefix, "--data-dir", str(tmp_path)]
    with _started(args, network, "device ready:") as device:
        _check_clean(device, _ctrl_c(device))


def test_ctrl_c_stops_a_factory_and_its_devices(factory_process):
    fac = factory_process()
    fac.create("counter", "c1", {})
    fac.create("counter", "c2", {})
    assert fac.process is not None
    assert len(psutil.Process(fac.process.process.pid).children()) == 2
    _check_clean(fac.process.process, _ctrl_c(fac.process.process))


def test_ctrl_c_stops_serve(network, prefix, tmp_path):
    setup = tmp_path / "setup.yaml"
    setup.write_text(f"prefix: '{prefix}'\ndevices:\n  - {{name: a, type: counter}}\n")
    with _started(["serve", str(setup)], network, "factory ready:") as serve:
        assert psutil.Process(serve.pid).children()  # the device runs
        _check_clean(serve, _ctrl_c(serve))


def test_ctrl_c_stops_the_dashboard(network, prefix):
    pytest.importorskip("fastapi")
    args = ["web", "--factory", prefix, "--port", "0"]
    with _started(args, network, "dashboard of") as web:
        _check_clean(web, _ctrl_c(web))


def test_ctrl_c_stops_the_retrieval_service(network, prefix, tmp_path):
    config = tmp_path / "retrieval.yaml"
    config.write_text("timeout: 1\n")  # (no factory answers: its first look gives up soon)
    args = ["retrieval", "--factory", prefix, "--port", "0", "--config", str(config)]
    with _started(args, network, "retrieval on") as service:
        _check_clean(service, _ctrl_c(service))


def test_ctrl_c_stops_sim_ioc_and_it_runs_without_stdin(network):
    """`sim-ioc &` in a shell, or with stdin from /dev/null, keeps running until signalled."""
    with subprocess.Popen(
        [sys.executable, "-m", "epics_collector", "sim-ioc", "--prefix", "TSIGSIM:"],
        env=network.environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        process_group=0,
    ) as popen:
        _until_ctrl_c(popen)


def _until_ctrl_c(popen: subprocess.Popen[str]) -> None:
    try:
        assert popen.stdout is not None
        for line in popen.stdout:  # until it says it is ready (or exits)
            if "sim IOC ready" in line:
                break
        assert popen.poll() is None  # standard input at EOF did not stop it
        os.killpg(popen.pid, signal.SIGINT)
        assert popen.wait(10) == 0
        assert "Traceback" not in popen.stdout.read()
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()


@pytest.mark.timeout(180)  # the whole demo starts (IOC, factory, three devices, dashboard)
def test_ctrl_c_stops_the_demo_with_its_export(network, tmp_path):
    args = ["demo", "--duration", "0", "--output", str(tmp_path)]
    with _started(args, network, "Showing live values", timeout=120) as demo:
        wait_for(
            lambda: len(psutil.Process(demo.pid).children(recursive=True)) >= 5,
            30,
            "the IOC, the factory, its three devices and the dashboard",
        )
        code = _ctrl_c(demo)
    _check_clean(demo, code)
    output = demo.output()
    assert "Interrupted" in output and "Stopped cleanly" in output
    path = Path(output.split("NeXus file: ")[1].split()[0])
    assert path.is_file() and path.stat().st_size > 0


def test_ctrl_c_while_the_demo_starts_stops_it_cleanly(network, tmp_path):
    args = ["demo", "--duration", "0", "--output", str(tmp_path)]
    with _started(args, network, "sim IOC (pid") as demo:
        code = _ctrl_c(demo, timeout=30)  # it finishes the step it is in (a device start)
    _check_clean(demo, code)
    assert "Stopped cleanly" in demo.output()


OWNER = """
import sys, time
from epics_collector import Factory
fac = Factory.local(sys.argv[1], data_dir=sys.argv[2])
fac.create("counter", "c", {})
print("owner ready", flush=True)
time.sleep(600)  # until killed
"""


def test_sigkill_of_a_local_factory_owner_leaves_nothing_running(network, prefix, tmp_path):
    script = tmp_path / "owner.py"
    script.write_text(textwrap.dedent(OWNER))
    with subprocess.Popen(
        [sys.executable, str(script), prefix, str(tmp_path / "data")],
        env=network.environ(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    ) as popen:
        _kill_the_owner(popen)


def _kill_the_owner(popen: subprocess.Popen[str]) -> None:
    try:
        assert popen.stdout is not None
        assert popen.stdout.readline().strip() == "owner ready"
        left = psutil.Process(popen.pid).children(recursive=True)
        assert len(left) >= 2  # the factory and its device
        popen.kill()
        popen.wait()
        started = time.monotonic()
        wait_for(lambda: not any(map(_alive, left)), 5, "the factory and its device gone")
        assert time.monotonic() - started < 5
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait()


def test_sigkill_of_the_demo_leaves_nothing_running(network, tmp_path):
    args = ["demo", "--duration", "0", "--output", str(tmp_path)]
    with _started(args, network, "Showing live values", timeout=120) as demo:
        left = psutil.Process(demo.pid).children(recursive=True)
        assert len(left) >= 5  # the IOC, the factory, its three devices, the dashboard
        demo.popen.kill()
        demo.popen.wait()
        wait_for(lambda: not any(map(_alive, left)), 5, "everything the demo started gone")
