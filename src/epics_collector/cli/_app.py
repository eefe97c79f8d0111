"""``epics-collector``: typer commands; each one is a thin shell over the library."""

from __future__ import annotations

import asyncio
import functools
import importlib.metadata
import json
import logging
import os
import sys
import tempfile
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer.exceptions import TyperException

from epics_collector.cli import _pipe as pipe
from epics_collector.core import (
    ConfigError,
    Device,
    DevicePv,
    PluginImportError,
    UnknownDeviceTypeError,
    load_config,
    load_device_type,
)
from epics_collector.factory import (
    DeviceSpec,
    Factory,
    FactoryConfig,
    FactoryPv,
    StateDirBusyError,
    StateDirLock,
    check_prefix,
    load_setup,
)
from epics_collector.process import (
    FACTORY_READY_LINE,
    READY_LINE,
    as_child,
    exit_with_parent,
    lower_process_priority,
    notify_ready,
)
from epics_collector.pva import (
    DeviceServer,
    Network,
    answered,
    serve_until_signal,
    servers_by_guid,
)
from epics_collector.sources import EpicsSources

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode=None,  # plain click help: NAME metavars, no <bool>, no boxes in a pipe
    help="Record, process and serve EPICS data as EPICS devices over PVAccess.",
)
#: Standard error: no emoji codes (``LAB:FAX:`` stays a PV name), lines never wrapped.
err = Console(stderr=True, emoji=False, highlight=False, soft_wrap=True)
MAX_TIMEOUT = 86_400.0  # seconds: a timeout longer than a day is a typo
MAX_DURATION = 366 * 86_400.0  # seconds: a run longer than a year is a typo
#: A timeout option: seconds, above 0 and at most a day (one line and exit 2 otherwise).
Timeout = Annotated[
    float,
    typer.Option(
        metavar="SECONDS", min=0.001, max=MAX_TIMEOUT, help="seconds to wait for an answer"
    ),
]


def duration_option(text: str) -> Any:
    """A duration option: seconds from 0 (``0`` and what ``text`` says) to a year."""
    return typer.Option(metavar="SECONDS", min=0.0, max=MAX_DURATION, help=text)


def fail(text: str, code: int = 2) -> typer.Exit:
    """Print an error for humans and scripts alike and give the exit to raise."""
    one_line = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    err.print(f"[bold red]error:[/] {escape(one_line)}")
    return typer.Exit(code)


def checked_prefix(prefix: str, what: str = "--prefix") -> str:
    """``prefix`` if it is a valid PV prefix (ending in ':'); else a one-line error, exit 2."""
    try:
        return check_prefix(prefix)
    except ValueError as error:
        raise fail(f"{what} {prefix!r}: {error}") from None


PROBE_WAIT = 0.3  # seconds a start listens for another server of its names (3 sends)
PROBE_NAMES = 2000  # of a device's names, at most this many are probed


def refuse_taken(network: Network, names: list[str], what: str, hint: str) -> None:
    """A one-line error and exit 2 if any of ``names`` already answers on the network."""
    taken = answered(network, names[:PROBE_NAMES], PROBE_WAIT)
    if taken:
        more = f" (and {len(taken) - 1} more of its names)" if len(taken) > 1 else ""
        raise fail(f"{what}: {taken[0]} already answers on the network{more}; {hint}")


def _device_class(type_name: str) -> type[Device[Any]]:
    try:
        return load_device_type(type_name)
    except UnknownDeviceTypeError as error:
        raise fail(str(error)) from None


@app.command()
def run(
    type_name: Annotated[str, typer.Argument(metavar="TYPE", help="registered device type")],
    prefix: Annotated[str, typer.Option(help="PV prefix, e.g. LAB:COL1:")],
    config: Annotated[
        str | None, typer.Option(help="config file (.json/.yaml) or inline JSON/YAML")
    ] = None,
    data_dir: Annotated[Path, typer.Option(help="where the device may write files")] = Path(),
    parent_pid: Annotated[
        int | None, typer.Option(hidden=True, help="exit when this process dies (factories)")
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="serve even if another server answers this prefix's names"),
    ] = False,
) -> None:
    """Run one device in the foreground until SIGTERM or SIGINT.

    Refuses (exit 2) if any of the device's PV names already answers on the network,
    unless --force; a factory's own devices skip the probe (the factory claimed the prefix).
    """
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    checked_prefix(prefix)
    _log_to_stdout()
    cls = _device_class(type_name)
    network = Network.from_environment()
    sources = EpicsSources(network)
    try:
        device = cls(load_config(cls.config_model, config), data_dir=data_dir, sources=sources)
    except (ConfigError, PluginImportError) as error:
        sources.close()
        raise fail(str(error)) from None
    if not force and parent_pid is None:
        names = [prefix + name for name in [*device.pvs, *device.rpcs]]
        hint = "another device serves this prefix: stop it, choose another, or pass --force"
        refuse_taken(network, names, f"--prefix {prefix}", hint)
    data_dir.mkdir(parents=True, exist_ok=True)

    def ready(server: DeviceServer) -> None:
        notify_ready(f"{READY_LINE} {prefix} ({len(server.pv_names)} PVs)")

    try:
        asyncio.run(serve_until_signal(device, prefix, network, ready))
    finally:
        sources.close()


def _log_to_stdout() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")


def _serve_factory(
    prefix: str,
    config: FactoryConfig,
    data_dir: Path,
    state_dir: Path | None,
    declared: list[DeviceSpec],
    restore: bool = True,
) -> None:
    network = Network.from_environment()
    # The state dir's lock first: an earlier instance of this factory holds it while it
    # runs, so what answers the prefix after that is another factory, said as such.
    state_lock = StateDirLock(state_dir or data_dir / ".factory")
    try:
        state_lock.acquire()
    except (StateDirBusyError, OSError) as error:
        raise fail(str(error)) from None
    hint = (
        "another factory (with its own state dir, maybe on another host) serves it: "
        "stop that one first, or choose another prefix"
    )
    taken = [prefix + FactoryPv.DEVICES, prefix + DevicePv.STATE]
    refuse_taken(network, taken, f"prefix {prefix}", hint)
    _log_to_stdout()
    sources = EpicsSources(network)
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        device = Factory(
            config,
            data_dir=data_dir,
            sources=sources,
            state_dir=state_dir,
            declared=declared,
            restore=restore,
            finder=functools.partial(servers_by_guid, network),
            state_lock=state_lock,
        )
    except (StateDirBusyError, OSError) as error:
        sources.close()
        raise fail(str(error)) from None

    def ready(server: DeviceServer) -> None:
        notify_ready(f"{FACTORY_READY_LINE} {prefix} ({len(device.devices.value['name'])} devices)")

    try:
        asyncio.run(serve_until_signal(device, prefix, network, ready))
    finally:
        sources.close()


@app.command()
def factory(
    prefix: Annotated[str, typer.Option(help="the factory's PV prefix, e.g. LAB:FAC:")],
    data_dir: Annotated[
        Path, typer.Option(help="devices write under DATA_DIR/<name>, as Factory.local()")
    ] = Path("epics-collector-data"),
    state_dir: Annotated[
        Path | None, typer.Option(help="device list and logs (default DATA_DIR/.factory)")
    ] = None,
    config: Annotated[
        str | None, typer.Option(help="the factory's own config file (.yaml/.json)")
    ] = None,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh", help="do not recreate the devices stored by an earlier run (files stay)"
        ),
    ] = False,
) -> None:
    """Run a factory service in the foreground: Create/Destroy devices over PVAccess."""
    checked_prefix(prefix)
    try:
        factory_config = load_config(FactoryConfig, config)
    except (ConfigError, ValueError) as error:
        raise fail(str(error)) from None
    _serve_factory(prefix, factory_config, data_dir, state_dir, [], restore=not fresh)


@app.command()
def serve(
    file: Annotated[Path, typer.Argument(help="setup file (YAML): factory and devices")],
) -> None:
    """Run a factory and the devices declared in FILE, in the foreground."""
    try:
        setup = load_setup(file)
        declared = setup.specs()
    except ConfigError as error:
        raise fail(str(error)) from None
    _serve_factory(setup.prefix, setup.factory, setup.data_dir, setup.state_dir, declared)


@app.command()
def schema(
    type_name: Annotated[
        str, typer.Argument(metavar="TYPE", help="registered device type, or 'factory'")
    ],
) -> None:
    """Print the JSON schema of a device type's configuration (or a factory's)."""
    model = FactoryConfig if type_name == "factory" else _device_class(type_name).config_model
    print(json.dumps(model.model_json_schema(), indent=2))


@app.command("sim-ioc")
def sim_ioc(
    prefix: Annotated[str, typer.Option(help="record name prefix")] = "SIM:",
) -> None:
    """Run the simulated source IOC (a real EPICS 7 IOC) in the foreground."""
    from epics_collector.sim import run_ioc

    checked_prefix(prefix)
    run_ioc(prefix, until_stdin_closes=False)


@app.command()
def demo(
    duration: Annotated[float, duration_option("seconds to run; 0 runs until Ctrl-C")] = 20.0,
    output: Annotated[
        Path, typer.Option(help="results go to a new run directory under OUTPUT")
    ] = Path("epics-collector-demo"),
) -> None:
    """The main job on loopback: sim IOC, factory, collector, processing, NeXus export."""
    from epics_collector.cli._demo import DemoSetupError, run_demo

    try:
        run_demo(duration, output)
    except DemoSetupError as error:
        raise fail(str(error)) from None


@app.command()
def web(
    factory: Annotated[
        str,
        typer.Option("--factory", "-f", metavar="PREFIX", help="factory prefix, e.g. LAB:FAC:"),
    ],
    host: Annotated[str, typer.Option(help="address to serve the page on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    allow_control: Annotated[
        bool, typer.Option("--allow-control", help="allow Start/Stop/Export and parameter changes")
    ] = False,
    trusted_proxy: Annotated[
        list[str] | None,
        typer.Option(
            "--trusted-proxy",
            metavar="ADDR",
            help="a reverse proxy whose X-Forwarded-For is believed (default: none)",
        ),
    ] = None,
) -> None:
    """Serve a live dashboard of a factory's devices (read-only unless --allow-control)."""
    try:
        from epics_collector.web import ServeError, make_app, serve
    except ImportError as error:
        raise fail(
            f"the dashboard needs the web extra: pip install 'epics-collector[web]' ({error})"
        ) from None
    _log_to_stdout()
    checked_prefix(factory, "--factory")
    app_ = make_app(factory, allow_control=allow_control, network=Network.from_environment())

    def ready(bound: int) -> None:
        notify_ready(f"dashboard of {factory} on http://{host}:{bound}/")

    try:
        serve(app_, host, port, ready, trusted_proxy or [])
    except ServeError as error:
        raise fail(str(error), 1) from None


@app.command()
def retrieval(
    factory: Annotated[
        list[str] | None,
        typer.Option("--factory", "-f", metavar="PREFIX", help="follow this factory's collectors"),
    ] = None,
    collector: Annotated[
        list[str] | None,
        typer.Option("--collector", "-c", metavar="PREFIX", help="serve this collector too"),
    ] = None,
    bind: Annotated[str, typer.Option(help="address to serve on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port (the Archiver Appliance's: 17668)")] = 17668,
    config: Annotated[
        str | None,
        typer.Option(help="config file: access, max_samples, refresh (and factories/collectors)"),
    ] = None,
) -> None:
    """Serve collectors' histories through the Archiver Appliance retrieval API."""
    try:
        from epics_collector.retrieval import RetrievalConfig, make_app
        from epics_collector.web import ServeError, serve
    except ImportError as error:
        raise fail(
            "the retrieval service needs the web extra: "
            f"pip install 'epics-collector[web]' ({error})"
        ) from None
    _log_to_stdout()
    try:
        settings = load_config(RetrievalConfig, config) if config else RetrievalConfig()
    except ConfigError as error:
        raise fail(str(error)) from None
    settings.factories += [checked_prefix(p, "--factory") for p in factory or []]
    settings.collectors += [checked_prefix(p, "--collector") for p in collector or []]
    if not settings.factories and not settings.collectors:
        raise fail("give at least one --factory PREFIX or --collector PREFIX")
    if not 0 <= port <= 65535:
        raise fail(f"--port must be 0-65535, got {port}")
    lower_process_priority(settings.nice)  # its threads, and those they start
    app_ = make_app(settings, Network.from_environment())

    def ready(bound: int) -> None:
        notify_ready(f"retrieval on http://{bind}:{bound}/retrieval")

    try:
        serve(app_, bind, port, ready, settings.trusted_proxies)
    except ServeError as error:
        raise fail(str(error), 1) from None


def _version(show: bool) -> None:
    if show:
        print(f"epics-collector {importlib.metadata.version('epics-collector')}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="print the version and exit"
        ),
    ] = False,
) -> None:
    """Record, process and serve EPICS data as EPICS devices over PVAccess."""


def _readable_metavars(command: Any, ctx: Any) -> None:
    """Help without ``<bool>``/``<str>``: arguments by NAME, options by SECONDS, PATH...

    Flags show no metavar; an option without one shows its type in words (NUMBER, PATH,
    TEXT); an argument shows its name, not a type.
    """
    for param in command.params:
        if param.param_type_name == "argument":
            param.metavar = param.metavar or param.name.upper()
            param.display_type_rich = lambda ctx: None  # typer would add "<str>"
        elif getattr(param, "is_flag", False):
            param.metavar = ""
        elif param.metavar is None and hasattr(param, "display_type"):
            label = str(param.display_type(ctx)).strip("<>")
            words = {"float": "NUMBER", "int": "INTEGER", "str": "TEXT", "text": "TEXT"}
            param.metavar = (
                f"[{label}]" if "|" in label else words.get(label.split()[0], label.upper())
            )
    for sub in getattr(command, "commands", {}).values():
        _readable_metavars(sub, ctx)


def main() -> None:
    """Entry point of the ``epics-collector`` command.

    Whatever goes wrong ends as one line on standard error: a bad argument or option
    value with exit code 2 (naming the command's ``--help``), Ctrl-C with 130 (a service
    handles its own Ctrl-C and exits 0), and an unexpected error with 1, its traceback
    written to a file the line names. A reader that closed standard output (``| head``)
    ends the command quietly with 141, as SIGPIPE would a shell's tool.
    """
    as_child()
    pipe.install()
    command = typer.main.get_command(app)
    with command.make_context("epics-collector", [], resilient_parsing=True) as ctx:
        _readable_metavars(command, ctx)
    try:
        code = command.main(prog_name="epics-collector", standalone_mode=False)
    except TyperException as error:  # click's usage errors: bad values, unknown options
        if type(error).__name__ == "NoArgsIsHelpError":  # no arguments: the help, as click
            print(error.format_message())
            sys.exit(getattr(error, "exit_code", 2))
        context = getattr(error, "ctx", None)
        where = context.command_path if context is not None else "epics-collector"
        fail(f"{error.format_message()} (see {where} --help)")
        sys.exit(getattr(error, "exit_code", 2))
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted")
        sys.exit(130)
    except pipe.PipeClosedError:  # `| head` has read enough: end as a shell's tool would
        pipe.silence()
        sys.exit(pipe.PIPE_EXIT)
    except Exception as error:  # a bug: one line here, the traceback in a file
        fail(f"unexpected {type(error).__name__}: {error} (traceback in {_crash_file()})")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


def _crash_file() -> str:
    """Write the current exception's traceback to a new private file; its path."""
    handle, path = tempfile.mkstemp(prefix="epics-collector-error-", suffix=".txt")
    with os.fdopen(handle, "w") as file:
        traceback.print_exc(file=file)
    return path
