"""``epics-collector``: typer commands; each one is a thin shell over the library."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from epics_collector.core import (
    ConfigError,
    Device,
    UnknownDeviceTypeError,
    load_config,
    load_device_type,
)
from epics_collector.factory import DeviceSpec, Factory, FactoryConfig, check_prefix, load_setup
from epics_collector.process import (
    FACTORY_READY_LINE,
    READY_LINE,
    exit_with_parent,
    watch_parent_from_environment,
)
from epics_collector.pva import DeviceServer, Network, serve_until_signal
from epics_collector.sources import EpicsSources

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Record, process and serve EPICS data as EPICS devices over PVAccess.",
)
err = Console(stderr=True)


def fail(text: str, code: int = 2) -> typer.Exit:
    """Print an error for humans and scripts alike and give the exit to raise."""
    one_line = "; ".join(line.strip() for line in text.splitlines() if line.strip())
    err.print(f"[bold red]error:[/] {escape(one_line)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


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
) -> None:
    """Run one device in the foreground until SIGTERM or SIGINT."""
    if parent_pid is not None:
        exit_with_parent(parent_pid)
    _log_to_stdout()
    cls = _device_class(type_name)
    network = Network.from_environment()
    sources = EpicsSources(network)
    try:
        device = cls(load_config(cls.config_model, config), data_dir=data_dir, sources=sources)
    except ConfigError as error:
        raise fail(str(error)) from None
    data_dir.mkdir(parents=True, exist_ok=True)

    def ready(server: DeviceServer) -> None:
        print(f"{READY_LINE} {prefix} ({len(server.pv_names)} PVs)", flush=True)

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
    _log_to_stdout()
    network = Network.from_environment()
    sources = EpicsSources(network)
    data_dir.mkdir(parents=True, exist_ok=True)
    device = Factory(
        config,
        data_dir=data_dir,
        sources=sources,
        state_dir=state_dir,
        declared=declared,
        restore=restore,
    )

    def ready(server: DeviceServer) -> None:
        print(f"{FACTORY_READY_LINE} {prefix} ({len(device.devices.value['name'])} devices)")
        sys.stdout.flush()

    try:
        asyncio.run(serve_until_signal(device, prefix, network, ready))
    finally:
        sources.close()


@app.command()
def factory(
    prefix: Annotated[str, typer.Option(help="the factory's PV prefix, e.g. LAB:FAC:")],
    data_dir: Annotated[Path, typer.Option(help="devices write under DATA_DIR/<name>")] = Path(),
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
    try:
        check_prefix(prefix)
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
    from epics_collector.sim._ioc import run as run_ioc

    run_ioc(prefix, until_stdin_closes=False)


@app.command()
def demo(
    duration: Annotated[float, typer.Option(help="seconds to run; 0 runs until Ctrl-C")] = 20.0,
    output: Annotated[
        Path, typer.Option(help="results go to a new run directory under OUTPUT")
    ] = Path("epics-collector-demo"),
) -> None:
    """The main job on loopback: sim IOC, factory, collector, processing, NeXus export."""
    from epics_collector.cli._demo import run_demo

    run_demo(duration, output)


@app.command()
def web(
    factory: Annotated[str, typer.Option("--factory", "-f", help="factory prefix, e.g. LAB:FAC:")],
    host: Annotated[str, typer.Option(help="address to serve the page on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port")] = 8080,
    allow_control: Annotated[
        bool, typer.Option("--allow-control", help="allow Start/Stop/Export and parameter changes")
    ] = False,
) -> None:
    """Serve a live dashboard of a factory's devices (read-only unless --allow-control)."""
    try:
        from epics_collector.web import ServeError, make_app, serve
    except ImportError as error:
        raise fail(
            f"the dashboard needs the web extra: pip install 'epics-collector[web]' ({error})"
        ) from None
    _log_to_stdout()
    try:
        check_prefix(factory)
    except ValueError as error:
        raise fail(str(error)) from None
    app_ = make_app(factory, allow_control=allow_control, network=Network.from_environment())

    def ready(bound: int) -> None:
        print(f"dashboard of {factory} on http://{host}:{bound}/", flush=True)

    try:
        serve(app_, host, port, ready)
    except ServeError as error:
        raise fail(str(error), 1) from None


def main() -> None:
    """Entry point of the ``epics-collector`` command."""
    watch_parent_from_environment()
    app()
