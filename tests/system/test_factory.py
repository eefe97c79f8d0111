"""The factory as a child process, driven by a plain p4p client (the contract)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import psutil
import pytest
from p4p.client.thread import Context, RemoteError
from p4p.nt import NTURI
from tests.conftest import FactoryHandle, _alive, cli

from epics_collector.factory._config_check import CHECK_TIMEOUT
from epics_collector.factory._state_files import PidFile
from epics_collector.process import (
    MODULE,
    READY_LINE,
    DeviceProcess,
    ReadyProcess,
    device_arguments,
    wait_for,
    wait_until,
)
from epics_collector.pva import Network, servers_by_guid
from epics_collector.sim import SimIoc
from epics_collector.storage._spill import unpack

pytestmark = pytest.mark.system
StartFactory = Callable[..., FactoryHandle]


def _counter_collector(sim_ioc: SimIoc, **extra: Any) -> dict[str, Any]:
    channel = {"pv": sim_ioc.prefix + "Counter", "alias": "counter"}
    return {"channels": [channel], "autostart": True, **extra}


def _get(ctx: Context, name: str) -> Any:
    """A get, typed for comparisons (p4p's stubs say little)."""
    return cast(Any, ctx.get(name))


def _answer_time(ctx: Context, name: str) -> float:
    """Seconds a get of ``name`` takes (a generous timeout, so a slow answer is measured)."""
    start = time.monotonic()
    ctx.get(name, timeout=30.0)
    return time.monotonic() - start


def _running(pid: int) -> bool:
    try:
        return _alive(psutil.Process(pid))
    except psutil.Error:
        return False


def _spilled(data_dir: Path, channel: str) -> np.ndarray:
    """The values of ``channel`` a collector has written to its spill store (read-only)."""
    uri = f"file:{data_dir / 'spill' / 'history.sqlite'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
        found = db.execute(
            "SELECT layout, data FROM chunks WHERE channel = ? ORDER BY id", (channel,)
        ).fetchall()
    return np.concatenate([unpack(layout, data).value for layout, data in found] or [[]])


def test_create_collector_and_processing_over_rpc(
    factory_process: StartFactory, ctx: Context, sim_ioc: SimIoc
) -> None:
    fac = factory_process()
    assert list(_get(ctx, fac.prefix + "Types")) == ["collector", "counter", "processing"]
    prefix = fac.create("collector", "col", _counter_collector(sim_ioc))
    assert prefix == f"{fac.prefix}col:"
    assert _answer_time(ctx, prefix + "Count") < 1.5
    processing = {
        "inputs": {"a": sim_ioc.prefix + "Counter"},
        "processor": {"name": "calc", "params": {"expression": "a * 2"}},
    }
    proc_prefix = fac.create("processing", "proc", processing)
    assert _answer_time(ctx, proc_prefix + "State") < 1.5

    rows = {name: fac.row(name) for name in ("col", "proc")}
    for name, row in rows.items():
        assert psutil.pid_exists(row["pid"]), name
        assert row["restarts"] == 0 and row["host"]
    assert rows["col"]["state"] == "Recording"
    assert rows["proc"]["type"] == "processing"
    assert wait_until(lambda: _get(ctx, prefix + "Count") > 2, 5)
    assert wait_until(lambda: float(_get(ctx, proc_prefix + "result")) > 0, 5)
    assert "created proc" in str(_get(ctx, fac.prefix + "Message"))


def test_kill_9_restarts_the_device_with_its_persisted_data(
    factory_process: StartFactory, ctx: Context, sim_ioc: SimIoc, network: Network
) -> None:
    fac = factory_process()
    prefix = fac.create("collector", "col", _counter_collector(sim_ioc, persist=True))
    data = fac.data_dir / "col"
    wait_for(lambda: (data / "spill" / "history.sqlite").exists(), 10, "a spill store")
    wait_for(lambda: len(_spilled(data, "counter")) >= 5, 10, "5 rows on disk")
    pid = fac.row("col")["pid"]
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not _running(pid), 5, "the killed process gone")
    before = _spilled(data, "counter")  # read before the restart (1 s later) writes again

    def back() -> bool:
        row = fac.row("col")
        return row["pid"] not in (0, pid) and row["state"] == "Recording"

    wait_for(back, 30, "the device back")
    # 1 s of restart back-off plus a process start: far below 10 s even on a loaded
    # machine (how fast it is belongs in bench/factory.py, not here)
    assert time.monotonic() - killed < 10.0, fac.row("col")
    row = fac.row("col")
    assert row["restarts"] == 1 and "SIGKILL" in row["message"]
    # a new client: ctx's channel finds the new process only at its next backed-off search
    with Context("pva", conf=network.client_conf(), useenv=False) as fresh:
        after = _get(fresh, prefix + "counter:Value")
    # everything on disk at the kill is served again, in order (the rows recorded after
    # the last flush, at most 0.5 s of them, are what a kill -9 may cost)
    assert len(before) >= 5
    np.testing.assert_array_equal(np.asarray(after)[: len(before)], before)


def test_factory_restart_brings_devices_back_and_sigkill_leaves_no_orphans(
    factory_process: StartFactory, ctx: Context, sim_ioc: SimIoc
) -> None:
    fac = factory_process()
    col = fac.create("collector", "col", _counter_collector(sim_ioc))
    proc = fac.create(
        "processing",
        "proc",
        {"inputs": {"a": sim_ioc.prefix + "Counter"}, "processor": {"name": "stats"}},
    )
    pids = [fac.row(name)["pid"] for name in ("col", "proc")]
    fac.stop()  # SIGTERM: the factory stops its devices and keeps the list
    assert not any(psutil.pid_exists(pid) for pid in pids)

    fac.start()
    assert sorted(fac.table()["name"]) == ["col", "proc"]
    assert all(fac.row(name)["state"] not in ("Starting", "Failed") for name in ("col", "proc"))
    assert _answer_time(ctx, col + "Count") < 1.5
    assert _answer_time(ctx, proc + "State") < 1.5

    assert fac.process is not None
    pids = [fac.row(name)["pid"] for name in ("col", "proc")]
    os.kill(fac.process.process.pid, signal.SIGKILL)
    gone = wait_until(lambda: not any(psutil.pid_exists(pid) for pid in pids), 5)
    assert gone, "device processes outlived a factory killed with SIGKILL"


def test_destroy(factory_process: StartFactory, ctx: Context, sim_ioc: SimIoc) -> None:
    fac = factory_process()
    fac.create("collector", "col", _counter_collector(sim_ioc))
    pid = fac.row("col")["pid"]
    assert "destroyed col" in str(fac.call("Destroy", name="col"))
    assert not psutil.pid_exists(pid)
    assert fac.table()["name"] == []
    with pytest.raises(RemoteError, match="no device named 'col'"):
        fac.call("Destroy", name="col")
    fac.stop()
    fac.start()  # destroyed devices stay destroyed
    assert fac.table()["name"] == []


LIMITS = """
prefixes: ["OTHER:"]
types: [collector, counter]
max_devices: 2
max_capacity: 1000
"""


@pytest.fixture(scope="module")
def limited_factory(network: Network, tmp_path_factory: pytest.TempPathFactory):
    """One factory with ``LIMITS`` for every refused request (none of them changes it)."""
    handle = FactoryHandle(network, f"F{uuid.uuid4().hex[:8]}:", tmp_path_factory.mktemp("f"))
    try:
        yield handle.start(LIMITS)
    finally:
        handle.close()


@pytest.mark.parametrize(
    ("arguments", "error"),
    [
        ({"type": "processing", "name": "p"}, "unknown device type 'processing'"),
        ({"type": "nope", "name": "p"}, "allowed: collector, counter"),
        ({"type": "counter", "name": "bad name"}, "device name is 1-40 characters"),
        ({"type": "counter", "name": "x" * 41}, "device name is 1-40 characters"),
        ({"type": "counter", "name": "x" * 5000}, "name is too long"),
        ({"type": "counter"}, "needs the arguments type and name"),
        ({"name": "c"}, "needs the arguments type and name"),
        ({"type": "counter", "name": "c", "config": "{nope"}, "neither JSON nor YAML"),
        ({"type": "counter", "name": "c", "config": "[1, 2]"}, "must be a JSON object"),
        ({"type": "counter", "name": "c", "config": '{"step": "fast"}'}, "step"),
        ({"type": "counter", "name": "c", "config": '{"unknown": 1}'}, "unknown"),
        (
            {"type": "collector", "name": "c", "config": '{"channels": ["X"], "capacity": 5000}'},
            "capacity 5000 exceeds this factory's max_capacity 1000",
        ),
        ({"type": "counter", "name": "c", "prefix": "no-colon"}, "ending in ':'"),
        ({"type": "counter", "name": "c", "color": "red"}, "bad arguments"),
    ],
)
def test_bad_create_requests_are_clear_errors(
    limited_factory: FactoryHandle, arguments: dict[str, str], error: str
) -> None:
    fac = limited_factory
    with pytest.raises(RemoteError, match=error):
        fac.call("Create", **arguments)
    assert fac.table()["name"] == []


def test_limits_duplicates_and_prefixes(factory_process: StartFactory) -> None:
    fac = factory_process(LIMITS)
    assert fac.create("counter", "one") == f"{fac.prefix}one:"
    with pytest.raises(RemoteError, match="a device named 'one' exists already"):
        fac.create("counter", "one")
    with pytest.raises(RemoteError, match="is in use by one"):
        fac.call("Create", type="counter", name="two", prefix=f"{fac.prefix}one:")
    with pytest.raises(RemoteError, match="outside this factory's"):  # no hijack
        fac.create("counter", "two", {"prefix": "ELSEWHERE:two:"})
    assert fac.create("counter", "two", {"prefix": "OTHER:two:"}) == "OTHER:two:"
    with pytest.raises(RemoteError, match="at most 2 devices"):
        fac.create("counter", "three")


def test_allow_hosts(factory_process: StartFactory) -> None:
    refused = factory_process("allow_hosts: [10.0.0.0/8]")
    with pytest.raises(
        RemoteError, match="Create refused: .*@127.0.0.1 may not create, destroy or restart"
    ):
        refused.create("counter", "c")
    allowed = factory_process("allow_hosts: [10.0.0.0/8, 127.0.0.1]")
    assert allowed.create("counter", "c").endswith("c:")


def test_a_device_that_keeps_crashing_is_marked_failed(
    factory_process: StartFactory, ctx: Context
) -> None:
    fac = factory_process("restart: {delay: 0.1, max_restarts: 2}")
    fac.create("counter", "c")
    # its data directory becomes a file: every restart now fails at start-up
    data = fac.data_dir / "c"
    data.rmdir()
    data.write_text("not a directory")
    os.kill(fac.row("c")["pid"], signal.SIGKILL)
    assert wait_until(lambda: fac.row("c")["state"] == "Failed", 10), fac.row("c")
    row = fac.row("c")
    assert row["restarts"] == 2 and row["pid"] == 0
    assert "gave up after 2 restarts" in row["message"]
    assert "exit code" in row["message"]
    # once the cause is fixed, Restart brings it back
    data.unlink()
    fac.call("Restart", name="c")
    assert wait_until(lambda: fac.row("c")["state"] == "Idle", 10), fac.row("c")
    assert _get(ctx, fac.prefix + "c:State") == 0


def test_a_device_that_cannot_start_is_a_create_error(factory_process: StartFactory) -> None:
    fac = factory_process()
    (fac.data_dir / "c").write_text("not a directory")
    with pytest.raises(RemoteError, match="c did not start: exit code"):
        fac.create("counter", "c")
    assert fac.table()["name"] == []
    fac.create("counter", "d")  # the factory goes on


def test_fuzzed_rpc_calls_all_fail_cleanly_and_memory_stays_flat(
    factory_process: StartFactory, ctx: Context
) -> None:
    fac = factory_process("max_devices: 1")
    fac.create("counter", "taken")
    assert fac.process is not None
    factory = psutil.Process(fac.process.process.pid)
    rng = np.random.default_rng(7)
    junk = ["", "x" * 100_000, "{", "[]", "null", '{"step": "x"}', "collector", "taken", "../x"]
    keys = ["type", "name", "config", "prefix", "bogus"]

    def one_call() -> None:
        rpc = str(rng.choice(["Create", "Destroy", "Restart"]))
        chosen = rng.choice(keys, size=int(rng.integers(0, 5)), replace=False)
        values = junk if rpc == "Create" else junk[:-2]  # (destroying "taken" would work)
        arguments = {str(k): str(rng.choice(values)) for k in chosen}
        with pytest.raises(RemoteError):
            fac.call(rpc, **arguments)

    for _ in range(200):
        one_call()
    rss_before = factory.memory_info().rss
    for _ in range(800):
        one_call()
    growth = factory.memory_info().rss - rss_before
    assert growth < 5_000_000, f"factory grew by {growth} bytes over 800 bad calls"
    assert fac.table()["name"] == ["taken"]
    beat = _get(ctx, fac.prefix + "Heartbeat")
    assert wait_until(lambda: _get(ctx, fac.prefix + "Heartbeat") > beat, 3)


def test_arguments_of_the_wrong_type_are_clear_errors(factory_process: StartFactory) -> None:
    fac = factory_process()
    pv = fac.prefix + "Create"
    uri = NTURI([("type", "s"), ("name", "i")])
    with pytest.raises(RemoteError, match="name must be a string, got int"):
        fac.ctx.rpc(pv, uri.wrap(pv, kws={"type": "counter", "name": 5}))
    uri = NTURI([("type", "s"), ("name", "s"), ("config", "d")])
    with pytest.raises(RemoteError, match="config must be a string, got float"):
        fac.ctx.rpc(pv, uri.wrap(pv, kws={"type": "counter", "name": "c", "config": 1.5}))


def test_a_hung_device_is_detected_killed_and_restarted_once(factory_process: StartFactory) -> None:
    fac = factory_process("hung_after: 3\nrestart: {delay: 0.1}")
    fac.create("counter", "c")
    wait_for(lambda: fac.row("c")["state"] == "Idle", 10, "c running")
    hung = psutil.Process(fac.row("c")["pid"])
    hung.suspend()  # SIGSTOP: alive, holding its PV names, Heartbeat silent
    try:
        wait_for(lambda: fac.row("c")["restarts"] == 1, 15, "hung device restarted")
        wait_for(lambda: fac.row("c")["state"] == "Idle", 15, "c running again")
        row = fac.row("c")
        assert "hung: Heartbeat silent" in row["message"], row
        assert not _alive(hung), "the hung process was left running beside the new one"
        assert row["pid"] != hung.pid
        beat = int(cast(Any, fac.ctx.get(row["prefix"] + "Heartbeat")))
        wait_for(  # the new one serves, and is alive
            lambda: int(cast(Any, fac.ctx.get(row["prefix"] + "Heartbeat"))) > beat,
            10,
            "the new process's Heartbeat advancing",
        )
    finally:
        with contextlib.suppress(psutil.Error):
            hung.kill()


def test_a_second_factory_refuses_and_the_first_keeps_recording(
    factory_process: StartFactory, sim_ioc: SimIoc, tmp_path: Path
) -> None:
    fac = factory_process()
    prefix = fac.create("collector", "c", _counter_collector(sim_ioc))
    pid = fac.row("c")["pid"]

    def recorded() -> np.ndarray:
        return np.asarray(cast(Any, fac.ctx.get(prefix + "counter:Tail")).value["value"])

    wait_for(lambda: len(recorded()) >= 5, 20, "the first factory's collector recording")
    second = [
        # the same prefix, its own directories: the prefix answers
        ["--prefix", fac.prefix, "--data-dir", str(tmp_path / "other")],
        # another prefix on the first one's state dir: the directory is locked
        ["--prefix", f"F{uuid.uuid4().hex[:8]}:", "--data-dir", str(fac.data_dir)]
        + ["--state-dir", str(fac.state_dir)],
        # the same factory started again (its earlier instance runs): the lock says so,
        # with the pid, before the network is asked
        ["--prefix", fac.prefix, "--data-dir", str(fac.data_dir)]
        + ["--state-dir", str(fac.state_dir)],
    ]
    assert fac.process is not None
    reasons = [
        "another factory (with its own state dir",
        "in use by another factory",
        f"(pid {fac.process.process.pid}: this factory's earlier instance",
    ]
    for arguments, reason in zip(second, reasons, strict=True):
        done = cli("factory", *arguments, env=fac.env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert reason in done.stderr
    before = len(recorded())
    wait_for(lambda: len(recorded()) >= before + 5, 20, "recording going on")
    values = recorded()
    assert np.all(np.diff(values) == 1), f"samples lost: {values}"
    row = fac.row("c")
    assert (row["pid"], row["restarts"]) == (pid, 0), "the first factory's device was touched"


def test_run_refuses_a_prefix_that_answers(
    device_process: Callable[..., DeviceProcess], network: Network, prefix: str, tmp_path: Path
) -> None:
    device_process("counter", prefix)
    done = cli(
        "run",
        "counter",
        "--prefix",
        prefix,
        "--data-dir",
        str(tmp_path / "d"),
        env=network.environ(),
        timeout=30,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert f"{prefix}" in done.stderr and "--force" in done.stderr


def test_a_factory_stops_devices_left_running_by_an_earlier_instance(
    factory_process: StartFactory, network: Network
) -> None:
    fac = factory_process()
    prefix = fac.create("counter", "c")
    fac.stop()
    # a device process the earlier instance left behind (as after a crash of the factory
    # while a child ignored its end), serving the same names
    arguments = device_arguments("counter", prefix, {}, parent_pid=os.getpid())
    leftover = ReadyProcess(MODULE, arguments, READY_LINE, env=network.environ()).start()
    try:
        PidFile(fac.state_dir, "c").write(leftover.process.pid, leftover.process.command)
        fac.start()
        assert not leftover.process.running, "the leftover still runs beside the new one"
        assert "left running before: c (pid" in str(fac.ctx.get(fac.prefix + "Message"))
        wait_for(lambda: fac.row("c")["state"] == "Idle", 10, "c restored")
        assert fac.row("c")["pid"] != leftover.process.pid
    finally:
        leftover.stop()


def test_a_yaml_bomb_is_refused_at_once_and_the_factory_stays_responsive(
    factory_process: StartFactory,
) -> None:
    fac = factory_process()
    lol = '["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'
    layers = [f"l0: &l0 {lol}"] + [
        f"l{i}: &l{i} [{','.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)
    ]
    bomb = "\n".join(layers)  # a few hundred bytes; 9**9 strings if expanded
    started = time.monotonic()
    with pytest.raises(RemoteError, match="YAML aliases"):
        fac.call("Create", type="counter", name="bomb", config=bomb)
    assert time.monotonic() - started < 1.0
    deep = "[" * 100 + "]" * 100
    with pytest.raises(RemoteError, match="nests deeper than 32"):
        fac.call("Create", type="counter", name="deep", config=deep)
    assert _answer_time(fac.ctx, fac.prefix + "Heartbeat") < 1.0


def test_a_device_is_never_put_under_names_another_server_answers(
    factory_process: StartFactory, sim_ioc: SimIoc
) -> None:
    fac = factory_process(f'prefixes: ["{sim_ioc.prefix}"]')  # the operator allowed it...
    fake = {  # an output named like the IOC's record: a second server for SIM:Counter
        "prefix": sim_ioc.prefix,
        "inputs": {"a": sim_ioc.prefix + "Counter"},
        "processor": {"name": "calc", "params": {"expression": "a * 0"}},
        "outputs": {"Counter": {}},
    }
    with pytest.raises(RemoteError, match=f"{sim_ioc.prefix}Counter already answers"):
        fac.create("processing", "fake", fake)
    assert fac.table()["name"] == []


def test_uploads_go_to_the_factorys_named_destinations(
    factory_process: StartFactory, sim_ioc: SimIoc, tmp_path: Path
) -> None:
    share, elsewhere = tmp_path / "share", tmp_path / "elsewhere"
    share.mkdir()
    elsewhere.mkdir()
    fac = factory_process(f"destinations: {{share: {{kind: directory, target: {share}}}}}")
    collector = _counter_collector(sim_ioc)
    with pytest.raises(RemoteError, match="no destination 'nowhere'"):
        fac.create("collector", "bad", {**collector, "upload": {"destination": "nowhere"}})
    # (full settings from another host are refused: tests/system/test_two_hosts.py)
    prefix = fac.create("collector", "col", {**collector, "upload": {"destination": "share"}})
    wait_for(lambda: _get(fac.ctx, prefix + "Count") >= 3, 10, "rows")
    fac.ctx.put(prefix + "Export", "run")
    fac.ctx.put(prefix + "Upload", 1)
    wait_for(lambda: (share / "run.nxs").exists(), 10, "the upload in the share")
    assert not list(elsewhere.iterdir())


def test_a_planted_pid_file_never_kills_another_process(
    factory_process: StartFactory, network: Network, prefix: str
) -> None:
    """Finding 12: a forged pids/*.json naming an operator's own device or another tool."""
    fac = factory_process()
    fac.create("counter", "c")
    fac.stop()
    operator = DeviceProcess("counter", prefix, env=network.environ()).start()
    tool = ReadyProcess("tests.unit.factory.fake_device", [], READY_LINE).start()
    try:
        for name, process in (("c", operator.process), ("tool", tool.process)):
            forged = PidFile(fac.state_dir, name)  # 0600, this user's: as trusted as it gets
            forged.write(process.pid, process.command)
        fac.start()
        wait_for(lambda: fac.row("c")["state"] == "Idle", 10, "c restored")
        assert operator.process.running and tool.process.running
        message = str(fac.ctx.get(fac.prefix + "Message"))
        assert "left running before" not in message
        assert "pid file pids/c.json not trusted" in message, message
    finally:
        operator.stop()
        tool.stop()


def test_links_in_the_state_directory_are_never_written_through(
    factory_process: StartFactory, tmp_path: Path
) -> None:
    """Finding 13: configs/ and logs/ swapped for links to somewhere else."""
    fac = factory_process()
    fac.stop()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "big.json"
    victim.write_text("precious")
    (elsewhere / "c.log").write_text("precious")
    for folder in ("configs", "logs"):
        shutil.rmtree(fac.state_dir / folder, ignore_errors=True)
        (fac.state_dir / folder).symlink_to(elsewhere, target_is_directory=True)
    fac.start()
    channels = [f"{fac.prefix}nope{i}" for i in range(3000)]  # > 32,000 characters: a file
    with pytest.raises(RemoteError):
        fac.create("collector", "big", {"channels": channels})
    with pytest.raises(RemoteError):
        fac.create("counter", "c")
    assert victim.read_text() == "precious" and (elsewhere / "c.log").read_text() == "precious"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["big.json", "c.log"]
    assert str(fac.ctx.get(fac.prefix + "State")) == "Running"


def test_a_long_config_never_stalls_the_factory(factory_process: StartFactory) -> None:
    """Finding 11: a multi-MiB YAML Create is checked off the factory's event loop."""
    fac = factory_process("create_max_chars: 16777216")
    channels = "\n".join(f"  - pv: LONG:pv{i}\n    alias: a{i}" for i in range(40_000))
    text = f"channels:\n{channels}\ncapacity: [not, a, number"  # block YAML, broken at its end
    assert len(text) > 1_500_000
    beats: list[float] = []
    sub = fac.ctx.monitor(fac.prefix + "Heartbeat", lambda _: beats.append(time.monotonic()))
    wait_for(lambda: len(beats) >= 2, 10, "Heartbeat")
    answers: list[float] = []
    done = threading.Event()

    def other_client() -> None:  # another client's requests meanwhile
        while not done.is_set():
            started = time.monotonic()
            fac.table()
            answers.append(time.monotonic() - started)
            done.wait(0.1)  # paced, and ends as soon as the Create has answered

    thread = threading.Thread(target=other_client)
    thread.start()
    started = time.monotonic()
    try:
        with pytest.raises(RemoteError, match="neither JSON nor YAML|took longer|split it"):
            # the factory answers within its CHECK_TIMEOUT (30 s): wait longer than that
            arguments = {"type": "collector", "name": "long", "config": text}
            uri = NTURI([(key, "s") for key in arguments])
            create = fac.prefix + "Create"
            fac.ctx.rpc(create, uri.wrap(create, kws=arguments), timeout=CHECK_TIMEOUT + 30)
    finally:
        took = time.monotonic() - started
        done.set()
        thread.join(10)
        sub.close()
    window = [b for b in beats if started <= b <= started + took]
    assert took > 1.0, "the check was too quick to show anything"
    assert len(window) >= int(took) - 1, f"{len(window)} beats in {took:.1f} s"
    assert max(answers) < 1.0, f"another client waited {max(answers):.1f} s"
    fac.create("counter", "after")  # and it creates on


def test_configs_over_the_cap_are_refused_at_once(factory_process: StartFactory) -> None:
    fac = factory_process()  # default cap: 1 MiB
    started = time.monotonic()
    with pytest.raises(RemoteError, match=r"config is too long \(1048577 characters"):
        fac.call("Create", type="counter", name="big", config=" " * (1 << 20) + "{")
    assert time.monotonic() - started < 2.0


def test_two_factories_never_both_create_one_prefix(
    factory_process: StartFactory, network: Network
) -> None:
    config = 'prefixes: ["SHARED:"]'
    first, second = factory_process(config), factory_process(config)
    prefix = f"SHARED:R{uuid.uuid4().hex[:6]}:"
    barrier = threading.Barrier(2)
    answers: dict[str, str] = {}

    def create(fac: FactoryHandle, name: str) -> None:
        barrier.wait(5)
        try:
            answers[name] = fac.call("Create", type="counter", name=name, prefix=prefix)
        except RemoteError as error:
            answers[name] = f"refused: {error}"

    threads = [
        threading.Thread(target=create, args=(fac, name))
        for fac, name in ((first, "a"), (second, "b"))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    won = [name for name, answer in answers.items() if answer == prefix]
    lost = [answer for answer in answers.values() if answer.startswith("refused")]
    assert len(won) == 1 and len(lost) == 1, answers
    assert "SHARED:" in lost[0] and ("same time" in lost[0] or "taken" in lost[0]), lost
    owner, other = (first, second) if won == ["a"] else (second, first)
    assert other.table()["name"] == []
    claim = cast(Any, owner.ctx.get(prefix + "Claim")) + ""  # (str() adds a timestamp)
    assert claim.startswith(f"factory {owner.prefix}")
    # a later Create elsewhere is refused at once; after Destroy the prefix is free again
    with pytest.raises(RemoteError, match="claimed by another factory|already answers"):
        other.call("Create", type="counter", name="c", prefix=prefix)
    owner.call("Destroy", name=won[0])
    wait_for(
        lambda: (
            not servers_by_guid(network, [prefix + "Claim", prefix + "State"], 0.2)[
                prefix + "State"
            ]
        ),
        10,
        "the destroyed device gone from the network",
    )
    assert other.call("Create", type="counter", name="c", prefix=prefix) == prefix
