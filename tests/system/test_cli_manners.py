"""CLI manners: results alone on stdout, --version, prefixes checked, the default factory,
and empty runs that say so (Message with MINOR, a warning on export)."""

from __future__ import annotations

import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from tests.conftest import cli

from epics_collector.cli import main
from epics_collector.cli._pipe import PIPE_EXIT
from epics_collector.client import Collector, EmptyExportWarning, default_prefix
from epics_collector.process import FactoryProcess, wait_for

pytestmark = pytest.mark.system


def _one_line_error(code: int, *args: str) -> str:
    result = cli(*args)
    assert result.returncode == code, (result.stdout, result.stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert result.stdout == ""
    return result.stderr


def test_version_and_readable_help() -> None:
    result = cli("--version")
    assert result.returncode == 0 and result.stdout.startswith("epics-collector ")
    bare = cli()  # no command: the help, as a plain click program prints it
    assert bare.stdout.startswith("Usage: epics-collector") and "error" not in bare.stderr
    help_text = cli("history", "--help").stdout
    assert "<bool>" not in help_text and "<str>" not in help_text and "\x1b[" not in help_text
    assert "--timeout SECONDS" in help_text and "{DEVICE} {CHANNEL}" in help_text


@pytest.mark.parametrize(
    "args",
    [
        ("run", "counter", "--prefix", "NOCOLON"),
        ("factory", "--prefix", "NOCOLON"),
        ("sim-ioc", "--prefix", "NOCOLON"),
        ("web", "--factory", "NOCOLON"),
        ("ls", "--factory", "NOCOLON"),
        ("create", "counter", "c", "--factory", "F:", "--prefix", "NOCOLON"),
    ],
    ids=lambda args: args[0],
)
def test_prefixes_without_a_colon_are_refused(args: tuple[str, ...]) -> None:
    assert "'NOCOLON'" in _one_line_error(2, *args) and "ending in ':'" in cli(*args).stderr


def test_ls_uses_the_default_local_factory(network, tmp_path) -> None:
    prefix = default_prefix()
    error = _one_line_error(1, "ls", "--timeout", "1")
    assert f"no factory answers at {prefix}" in error and "--factory" in error
    with FactoryProcess(prefix, data_dir=tmp_path, env=network.environ()):
        result = cli("ls")
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [
            "name",
            "type",
            "prefix",
            "state",
            "pid",
            "restarts",
            "started",
            "message",
        ]  # piped: a plain header


def test_an_empty_run_says_so_and_its_export_warns(device_process, prefix, ctx) -> None:
    missing = f"{prefix}NoSuchSource"
    device_process("collector", prefix, {"channels": [{"pv": missing, "alias": "x"}]})
    ctx.put(prefix + "Start", 1)
    ctx.put(prefix + "Stop", 1)
    message = ctx.get(prefix + "Message")
    assert message.severity == 1, message  # MINOR: worth a look
    assert f"never connected: x ({missing}) (check the PV names)" in message + ""

    result = cli("export", prefix, "empty.nxs")
    assert result.returncode == 0, result.stderr
    path = result.stdout.rstrip("\n")
    assert result.stdout == path + "\n" and path.endswith("/empty.nxs")  # nothing else
    assert "warning:" in result.stderr and "exported 0 rows" in result.stderr
    assert ctx.get(prefix + "Message").severity == 1

    with Collector.connect(prefix) as col:
        with pytest.warns(EmptyExportWarning, match="nothing was recorded"):
            col.export("empty2.nxs")
        assert cli("call", prefix + "Push", "channel=note", "value=1").returncode == 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a file with rows: no warning
            col.export("full.nxs")
    wait_for(lambda: ctx.get(prefix + "ExportRows") == 1, 5, "one row exported")


BOXES = set("┏┓┗┛━┃│─┡┩╇┳┻╋┼┌┐└┘")


@pytest.mark.parametrize(
    "args",
    [
        ("get", "X:Y", "--timeout", "-1"),
        ("get", "X:Y", "--timeout", "1e12"),
        ("get", "X:Y", "--timeout", "soon"),
        ("monitor", "X:Y", "--count", "-1"),
        ("demo", "--duration", "-5"),
        ("demo", "--duration", "1e30"),
        ("demo", "--output", "/proc/nope"),
        ("history", "X:", "c", "--last", "0"),
        ("history", "X:", "c", "--start", "yesterday"),
        ("export", "X:", "f.nxs", "--format", "xls"),
        ("watch", "X:", "--interval", "0"),
        ("run", "counter", "--prefix", "X:", "--config", '{"step": 0}'),
        ("run", "counter", "--prefix", "X:", "--config", '{"step": 1e30}'),
        ("run", "counter", "--prefix", "X:", "--config", '{"step": 1'),
        ("nosuch",),
        ("get",),
    ],
    ids=lambda args: " ".join(args),
)
def test_every_bad_value_is_one_line_and_exit_2(
    args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (the command's entry point, as the shell calls it): no subprocess."""
    monkeypatch.setattr(sys, "argv", ["epics-collector", *args])
    with pytest.raises(SystemExit) as ended:
        main()
    said = capsys.readouterr()
    assert ended.value.code == 2, said
    assert said.out == "" and len(said.err.strip().splitlines()) == 1, said.err
    assert said.err.startswith("error: ") and "Traceback" not in said.err


def test_a_bad_output_file_and_a_broken_yaml_file_are_named(tmp_path: Path) -> None:
    a_file = tmp_path / "taken"
    a_file.write_text("")
    assert "Not a directory" in _one_line_error(2, "demo", "--output", str(a_file))
    broken = tmp_path / "counter.yaml"
    broken.write_text("step: [1\n")
    assert str(broken) in _one_line_error(
        2, "run", "counter", "--prefix", "X:", "--config", str(broken)
    )


def test_values_pv_names_and_pipes(factory_process, sim_ioc, ctx) -> None:
    fac = factory_process(prefix=f"LAB{fac_id()}:FAX:")  # ":FAX:" is rich's emoji code
    col = fac.create(
        "collector",
        "col",
        {"channels": [{"pv": sim_ioc.prefix + "Counter", "alias": "n"}], "autostart": True},
    )
    proc = fac.create(
        "processing",
        "proc",
        {
            "inputs": {"a": sim_ioc.prefix + "Counter"},
            "processor": {"name": "calc", "params": {"expression": "a"}},
        },
    )
    wait_for(lambda: ctx.get(col + "Count") >= 3, 10, "rows recorded")
    # a value that does not fit the PV: one line, exit 2, nothing sent
    assert "'abc' is not a number" in _one_line_error(2, "put", sim_ioc.prefix + "Setpoint", "abc")
    assert "abc" in _one_line_error(2, "put", proc + "Enable", "abc")
    # a negative number is a value, not an option
    done = cli("put", sim_ioc.prefix + "CompressIn", "-5")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[1].split()[-1] == "-5.0"
    # PV names are printed as they are: no emoji in place of ":FAX:"
    error = _one_line_error(1, "get", fac.prefix + "Nope", "--timeout", "0.3")
    assert f"{fac.prefix}Nope" in error
    shown = cli("get", col + "State")
    assert shown.returncode == 0 and f"{col}State" in shown.stdout
    # a reader's bad query is an error to that reader only
    before = ctx.get(col + "Message")
    future = cli("history", col, "n", "--start", "2030-01-01")
    assert (future.returncode, future.stdout.split()) == (
        0,
        ["time", "value", "severity", "status"],
    )
    assert "points" in _one_line_error(1, "call", col + "Query", "alias=n", "points=abc")
    after = ctx.get(col + "Message")
    assert (after + "", after.severity) == (before + "", before.severity)
    # into a pipe: plain full-width lines, no boxes
    for args in (
        ("ls", "--factory", fac.prefix),
        ("history", col, "n", "--last", "3"),
        ("watch", col, "--duration", "0.5"),
    ):
        piped = cli(*args)
        assert piped.returncode == 0, piped.stderr
        assert piped.stdout and not BOXES & set(piped.stdout), piped.stdout
    listed = cli("ls", "--factory", fac.prefix).stdout.splitlines()
    assert listed[0].split()[:3] == ["name", "type", "prefix"] and len(listed) == 3
    assert any(col in line and "Recording" in line for line in listed), listed


def fac_id() -> str:
    import uuid

    return uuid.uuid4().hex[:6].upper()


def _head(*args: str, lines: int) -> subprocess.CompletedProcess[str]:
    """``epics-collector ARGS | head -LINES``: the reader reads LINES lines, then goes away.

    The command's own status, and what it wrote on standard error; a command still
    running 20 s after its reader went away fails the test.
    """
    command = [sys.executable, "-m", "epics_collector", *args]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        read = [process.stdout.readline() for _ in range(lines)]
        process.stdout.close()  # as head does when it has its lines
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"{args[0]} still runs after its reader went away") from None
        assert all(read), f"fewer than {lines} lines came: {read}"
        return subprocess.CompletedProcess(command, code, "".join(read), process.stderr.read())


def test_a_reader_that_goes_away_ends_the_command_quietly(sim_ioc) -> None:
    """Walkthrough 3, finding 1 (`monitor PV | head -2` never exited) and 18 (exit 1)."""
    counter = sim_ioc.prefix + "Counter"
    # on p4p's callback thread: monitor ends, no traceback
    monitored = _head("monitor", counter, lines=2)
    assert monitored.returncode == PIPE_EXIT, monitored
    assert monitored.stderr == "", monitored.stderr
    # on the main thread, past a pipe's buffer (64 KiB): as a shell's tool, not 1
    got = _head("get", *[counter] * 3000, lines=3)
    assert got.returncode == PIPE_EXIT and got.stderr == "", got


def test_put_refuses_a_number_that_is_not_finite_unless_asked(sim_ioc, ctx) -> None:
    """Walkthrough 3, finding 5: `put PV 1e400` sent inf (the IOC clamped it to DRVH)."""
    setpoint = sim_ioc.prefix + "CompressIn"
    assert cli("put", setpoint, "3").returncode == 0
    for word in ("1e400", "inf", "-inf", "nan"):
        assert "not a finite number" in _one_line_error(2, "put", setpoint, word)
    assert float(ctx.get(setpoint)) == 3.0, "a refused value was sent"
    wave = sim_ioc.prefix + "CompressArrayIn"
    assert "'1e400' is not a finite number" in _one_line_error(2, "put", wave, "1", "1e400")
    sent = cli("put", setpoint, "inf", "--allow-nonfinite")
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.splitlines()[1].split()[-1] == "inf"
