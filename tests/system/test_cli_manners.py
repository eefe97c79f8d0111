"""CLI manners: results alone on stdout, --version, prefixes checked, the default factory,
and empty runs that say so (Message with MINOR, a warning on export)."""

from __future__ import annotations

import warnings

import pytest
from tests.conftest import cli

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
    help_text = cli("history", "--help").stdout
    assert "<bool>" not in help_text and "<str>" not in help_text and "\x1b[" not in help_text
    assert "--timeout NUMBER" in help_text and "{DEVICE} {CHANNEL}" in help_text


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
        assert f"{prefix}: 0 devices" in result.stdout


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
