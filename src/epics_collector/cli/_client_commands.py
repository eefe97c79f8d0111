"""Client commands: drive factories and devices anywhere on the network.

Exit codes: 0 done, 1 the device or network said no (the reason is printed), 2 bad
arguments or configuration.
"""

from __future__ import annotations

import datetime
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.live import Live
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from epics_collector.cli._app import Timeout, app, checked_prefix, duration_option, err, fail
from epics_collector.cli._output import (
    Display,
    counted,
    history_rows,
    iso,
    out,
    plain,
    plot_history,
    print_history,
    print_json,
    print_rows,
    source_display,
)
from epics_collector.client import (
    Binned,
    ClientError,
    Collector,
    Device,
    EmptyExportWarning,
    Factory,
    History,
    ViewArgs,
    default_prefix,
)
from epics_collector.collector import CollectorPv
from epics_collector.core import (
    ConfigError,
    DevicePv,
    device_type_names,
    load_device_type,
    read_config,
)
from epics_collector.core import Device as CoreDevice
from epics_collector.factory import Factory as FactoryModel
from epics_collector.factory import FactoryConfig
from epics_collector.processing import ProcessingPv
from epics_collector.screens import write_screen

D = TypeVar("D", bound=Device)
SCREENS = Path("screens")

FactoryOption = Annotated[
    str | None,
    typer.Option(
        "--factory",
        "-f",
        envvar="EPICS_COLLECTOR_FACTORY",
        metavar="PREFIX",
        help="factory prefix, e.g. LAB:FAC: (default: Factory.local()'s HOST:USER:FAC:)",
    ),
]
DeviceArgument = Annotated[
    str,
    typer.Argument(
        metavar="DEVICE", help="device prefix (ending in ':') or its name on the factory"
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON for scripts")]
TimeoutOption = Timeout


class Format(StrEnum):
    """Export formats."""

    NEXUS = "nexus"
    CSV = "csv"


@contextmanager
def _reported() -> Iterator[None]:
    """Turn client errors into one line on stderr and exit code 1 (2 for bad input)."""
    try:
        yield
    except (ConfigError, ValueError) as error:
        raise fail(str(error), 2) from None
    except (ClientError, TimeoutError) as error:
        message = getattr(error, "message", "")
        text = (
            f"{error} (device says: {message})"
            if message and message not in str(error)
            else str(error)
        )
        raise fail(text, 1) from None


def _factory(factory: str | None, timeout: float) -> Factory:
    """The factory at ``factory``, or the one ``Factory.local()`` starts by default.

    Every wait, a Create's included, is bounded by ``timeout`` (the command's --timeout).
    """
    if factory:
        checked_prefix(factory, "--factory")
        return Factory.connect(factory, timeout=timeout, lifecycle_timeout=timeout)
    prefix = default_prefix()
    try:
        return Factory.connect(prefix, timeout=timeout, lifecycle_timeout=timeout)
    except ClientError:
        raise fail(
            f"no factory answers at {prefix} (the default prefix of Factory.local()); "
            "give --factory PREFIX or set EPICS_COLLECTOR_FACTORY",
            1,
        ) from None


def _device(kind: type[D], device: str, factory: str | None, timeout: float) -> D:
    """A device by prefix (ending in ':'), or by name on a factory (default: the local one)."""
    if device.endswith(":"):
        return kind.connect(device, timeout=timeout)
    with _factory(factory, timeout) as fac:
        for info in fac.devices():
            if info.name == device:
                return kind.connect(info.prefix, timeout=timeout)
    raise ClientError(f"{fac.prefix} no device named {device!r} (a device prefix ends in ':')")


def _config(source: str | None) -> dict[str, Any]:
    data = read_config(source)
    if not isinstance(data, dict):
        raise ConfigError("a device configuration is a mapping (JSON object)")
    return data


@app.command()
def create(
    type_name: Annotated[str, typer.Argument(metavar="TYPE", help="collector, processing, ...")],
    name: Annotated[str, typer.Argument(help="device name (letters, digits, _ and -)")],
    factory: FactoryOption = None,
    config: Annotated[
        str | None, typer.Option(help="config file (.yaml/.json) or inline JSON/YAML")
    ] = None,
    prefix: Annotated[
        str | None, typer.Option(help="PV prefix (default: factory + name + ':')")
    ] = None,
    json: JsonOption = False,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Create a device on a factory; prints its prefix once it serves."""
    if prefix is not None:
        checked_prefix(prefix)
    with _reported(), _factory(factory, timeout) as fac:
        device = fac.create(type_name, name, _config(config), prefix)
        print_json({"name": name, "prefix": device.prefix}) if json else print(device.prefix)


@app.command()
def destroy(
    name: Annotated[str, typer.Argument(help="device name")],
    factory: FactoryOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Stop a device and remove it from its factory (a collector's recording is kept)."""
    with _reported(), _factory(factory, timeout) as fac:
        fac.destroy(name)
        out.print(f"destroyed {name}")


TIMES = ("first", "last", "created", "destroyed")  # POSIX seconds in a recording's row


@app.command()
def recordings(
    factory: FactoryOption = None, json: JsonOption = False, timeout: TimeoutOption = 5.0
) -> None:
    """List a factory's recordings: its collectors' (live) and those kept after them."""
    with _reported(), _factory(factory, timeout) as fac:
        rows = [asdict(info) for info in fac.recordings()]
    if json:
        print_json(rows)
        return
    shown = [
        {**row, "pvs": ",".join(row["pvs"])} | {key: iso(row[key]) for key in TIMES} for row in rows
    ]
    columns = ["id", "state", "rows", "bytes", "first", "last", "destroyed", "pvs"]
    print_rows(f"{factory or default_prefix()} {counted(len(rows), 'recording')}", shown, columns)


@app.command()
def purge(
    recording: Annotated[str, typer.Argument(help="a retired recording's id (see recordings)")],
    factory: FactoryOption = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Delete a retired recording's files (needs the factory's delete right)."""
    with _reported(), _factory(factory, timeout) as fac:
        removed = fac.purge(recording)
    out.print(f"purged {recording}: {removed['rows']} rows, {removed['bytes']} bytes")


@app.command()
def retention(
    factory: FactoryOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list what would be done; change nothing")
    ] = False,
    json: JsonOption = False,
    timeout: TimeoutOption = 600.0,
) -> None:
    """Apply the factory's retention policy and disk budget now (its delete right).

    One line per action: rows reduced, rows deleted, whole recordings deleted for the
    budget, and the bytes each frees. With --dry-run nothing is changed.
    """
    with _reported(), _factory(factory, timeout) as fac:
        actions = fac.retention(dry_run=dry_run)
    if json:
        print_json([asdict(action) for action in actions])
        return
    shown = [{**asdict(a), "before": iso(a.before)} for a in actions]
    columns = ["recording", "channel", "action", "operator", "before", "rows", "written", "freed"]
    title = "would do" if dry_run else "did"
    freed = sum(a.freed for a in actions)
    print_rows(
        f"{factory or default_prefix()} retention {title} {counted(len(actions), 'action')}, "
        f"{freed} bytes freed",
        shown,
        columns,
    )


@app.command("ls")
def list_devices(
    factory: FactoryOption = None, json: JsonOption = False, timeout: TimeoutOption = 5.0
) -> None:
    """List a factory's devices and their state."""
    with _reported(), _factory(factory, timeout) as fac:
        rows = [asdict(info) for info in fac.devices()]
    if json:
        print_json(rows)
        return
    columns = ["name", "type", "prefix", "state", "pid", "restarts", "started", "message"]
    print_rows(f"{factory or default_prefix()} {counted(len(rows), 'device')}", rows, columns)


def _record(device: str, factory: str | None, timeout: float, recording: bool) -> None:
    with _reported(), _device(Collector, device, factory, timeout) as col:
        col.start() if recording else col.stop()
        out.print(f"{col.prefix} {col.state()}")


@app.command()
def start(
    device: DeviceArgument, factory: FactoryOption = None, timeout: TimeoutOption = 5.0
) -> None:
    """Start a collector recording."""
    _record(device, factory, timeout, recording=True)


@app.command()
def stop(
    device: DeviceArgument, factory: FactoryOption = None, timeout: TimeoutOption = 5.0
) -> None:
    """Stop a collector recording (its history stays)."""
    _record(device, factory, timeout, recording=False)


@app.command("add-channel")
def add_channel(
    device: DeviceArgument,
    channel: Annotated[
        str,
        typer.Argument(help="a PV name, or JSON/YAML as in the config: {pv: ..., alias: ...}"),
    ],
    factory: FactoryOption = None,
    timeout: TimeoutOption = 5.0,
) -> None:
    """Record one more channel in a running collector (kept for its next start)."""
    with _reported(), _device(Collector, device, factory, timeout) as col:
        spec = read_config(channel) if channel.lstrip().startswith("{") else channel
        if not isinstance(spec, (str, dict)):
            raise ConfigError("a channel is a PV name or a mapping (JSON object)")
        out.print(col.add_channel(spec))


@app.command("remove-channel")
def remove_channel(
    device: DeviceArgument,
    alias: Annotated[str, typer.Argument(help="the channel's alias")],
    factory: FactoryOption = None,
    timeout: TimeoutOption = 5.0,
) -> None:
    """Record a collector's channel no more (its rows stay: history, exports, Removed)."""
    with _reported(), _device(Collector, device, factory, timeout) as col:
        out.print(col.remove_channel(alias))


def _moment(text: str | None) -> float | None:
    """POSIX seconds from ``text``: a number, or an ISO 8601 time (UTC unless it says)."""
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text!r}: give POSIX seconds or an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


@app.command()
def history(
    device: DeviceArgument,
    channel: Annotated[str, typer.Argument(help="channel alias or source PV name")],
    factory: FactoryOption = None,
    last: Annotated[int | None, typer.Option(min=1, help="only the newest N rows")] = None,
    start: Annotated[
        str | None, typer.Option(metavar="TIME", help="from (POSIX seconds or ISO 8601, UTC)")
    ] = None,
    end: Annotated[str | None, typer.Option(metavar="TIME", help="to (as --start)")] = None,
    points: Annotated[
        int | None, typer.Option(metavar="N", min=1, help="rows at most (server side; 1000)")
    ] = None,
    operator: Annotated[
        str | None,
        typer.Option(
            metavar="OP", help="raw, mean, min, max, first, last, count or minmax (server side)"
        ),
    ] = None,
    csv: Annotated[bool, typer.Option("--csv", help="CSV on standard output")] = False,
    json: JsonOption = False,
    plot: Annotated[bool, typer.Option("--plot", help="a plot in the terminal")] = False,
    recording: Annotated[
        str | None,
        typer.Option(metavar="ID", help="a retired recording of DEVICE (see recordings)"),
    ] = None,
    timeout: TimeoutOption = 5.0,
) -> None:
    """Print a channel's history, or part of it reduced on the server (--start/--end/...)."""
    pv: str | None = None  # the source, whose PREC and units a table or plot follows
    with _reported():
        begin, finish = _moment(start), _moment(end)
        view: ViewArgs = {"start": begin, "end": finish, "points": points, "operator": operator}
        whole = (start, end, points, operator) == (None, None, None, None)
        if recording is not None:
            if recording.partition(".")[0] != device:
                raise ClientError(f"{recording!r} is not a recording of {device!r}")
            with _factory(factory, timeout) as fac:
                rows: History | Binned = (
                    fac.history(recording, channel)
                    if whole
                    else fac.history(recording, channel, **view)
                )
        else:
            with _device(Collector, device, factory, timeout) as col:
                rows = col.history(channel) if whole else col.history(channel, **view)
                pv = _source_pv(col, channel) if not (json or csv) else None
    display = source_display(pv, min(timeout, 2.0)) if pv else Display()
    if plot:
        plot_history(channel, rows, display)
        return
    fmt = "json" if json else "csv" if csv else "table"
    print_history(channel, history_rows(rows, last), fmt, display)


def _source_pv(col: Collector, channel: str) -> str | None:
    """The source PV of a collector's channel (an alias or the PV itself)."""
    table = col.channels()
    for alias, pv in zip(table["alias"], table["pv"], strict=True):
        if channel in (str(alias), str(pv), str(pv).partition("://")[2]):
            return str(pv)
    return None


def _spinner(text: str) -> Progress:
    """Progress on standard error: standard output carries only the result."""
    return Progress(
        SpinnerColumn(), TextColumn(text), TimeElapsedColumn(), console=err, transient=True
    )


@app.command()
def export(
    device: DeviceArgument,
    name: Annotated[str, typer.Argument(help="file name inside the device's data directory")],
    factory: FactoryOption = None,
    format: Annotated[Format, typer.Option(help="file format")] = Format.NEXUS,  # noqa: A002
    timeout: TimeoutOption = 5.0,
) -> None:
    """Write a collector's history to a file; prints the path written."""
    with _reported(), _device(Collector, device, factory, timeout) as col:
        with (
            _spinner(f"exporting {name}") as progress,
            warnings.catch_warnings(record=True) as said,
        ):
            warnings.simplefilter("always", EmptyExportWarning)
            progress.add_task("export", total=None)
            path = col.export(name, format.value)
        for warning in said:
            err.print(f"[yellow]warning:[/] {escape(str(warning.message))}", highlight=False)
        print(path)


@app.command()
def upload(
    device: DeviceArgument, factory: FactoryOption = None, timeout: TimeoutOption = 5.0
) -> None:
    """Upload a collector's last export with its configured uploader."""
    with _reported(), _device(Collector, device, factory, timeout) as col:
        with _spinner("uploading") as progress:
            progress.add_task("upload", total=None)
            status = col.upload()
        print(status)


def _watch_rows(device: Device) -> list[tuple[str, str]]:
    """(PV, value) of a device's main PVs, then one row per collector channel."""
    names = [DevicePv.STATE, DevicePv.MESSAGE, DevicePv.HEARTBEAT]
    try:
        config = device.config()
    except ClientError:
        config = {}
    if "channels" in config:
        names += [CollectorPv.COUNT, CollectorPv.DROPPED, CollectorPv.OVERRUNS]
    if "outputs" in config:
        names += [
            ProcessingPv.COUNT,
            ProcessingPv.ERRORS,
            ProcessingPv.SKIPPED,
            ProcessingPv.OVERRUNS,
            ProcessingPv.DURATION,
            *config["outputs"],
        ]
    rows = []
    for name in names:
        try:
            value = plain(device.get(name))
        except ClientError as error:
            value = f"({error})"
        rows.append((name, str(value)))
    if "channels" in config:
        channels = device.get(CollectorPv.CHANNELS)
        for i, alias in enumerate(channels["alias"]):
            state = "connected" if channels["connected"][i] else "DISCONNECTED"
            count = int(channels["count"][i])
            rows.append((f"{alias}", f"{count} sample{'' if count == 1 else 's'}, {state}"))
    return rows


def _watch_table(device: Device) -> Table:
    table = Table(title=f"{device.prefix} (Ctrl-C stops)")
    table.add_column("PV")
    table.add_column("value")
    for row in _watch_rows(device):
        table.add_row(*row)
    return table


def _watch_lines(device: Device, until: float, interval: float) -> None:
    """Into a pipe or a file: plain ``time PV value`` lines at every refresh, no boxes."""
    while True:
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
        for name, value in _watch_rows(device):
            print(f"{stamp}  {device.prefix}{name}  {value}", flush=True)
        left = until - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(interval, left))


@app.command()
def watch(
    device: DeviceArgument,
    factory: FactoryOption = None,
    duration: Annotated[float, duration_option("seconds; 0 watches until Ctrl-C")] = 0.0,
    interval: Annotated[
        float, typer.Option(min=0.1, max=3600.0, help="seconds between refreshes")
    ] = 0.5,
    timeout: TimeoutOption = 5.0,
) -> None:
    """A live view of a device's main PVs."""
    with _reported(), _device(Device, device, factory, timeout) as proxy:
        proxy.state()  # fails fast, with the PV's name, if nothing answers
        deadline = time.monotonic() + duration if duration > 0 else float("inf")
        try:
            if not out.is_terminal:
                _watch_lines(proxy, deadline, interval)
                return
            with Live(_watch_table(proxy), console=out, refresh_per_second=4) as live:
                while time.monotonic() < deadline:
                    time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
                    live.update(_watch_table(proxy))
        except KeyboardInterrupt:
            pass


def _config_models() -> dict[str, type[Any]]:
    models: dict[str, type[Any]] = {"factory": FactoryConfig}
    for name in device_type_names():
        models[name] = load_device_type(name).config_model
    return models


def guess_type(config: dict[str, Any]) -> str:
    """The device type whose configuration has exactly these keys (a Config PV's JSON)."""
    keys = set(config) - {"access"}  # every device config may have it
    found = [
        name
        for name, model in _config_models().items()
        if set(model.model_fields) - {"access"} == keys
    ]
    if len(found) != 1:
        raise ConfigError("cannot tell the device type from its Config; give --type")
    return found[0]


def local_model(type_name: str, config: dict[str, Any], data_dir: Path) -> CoreDevice[Any]:
    """A device object with this configuration, not started: its PV description."""
    if type_name == "factory":
        return FactoryModel(config, data_dir=data_dir)
    return load_device_type(type_name)(config, data_dir=data_dir)


@app.command()
def screens(
    prefixes: Annotated[list[str], typer.Argument(metavar="PREFIX...", help="device prefixes")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="directory for the .bob files")
    ] = Path("screens"),
    type_name: Annotated[
        str | None, typer.Option("--type", help="device type (default: from its Config)")
    ] = None,
    timeout: TimeoutOption = 5.0,
) -> None:
    """Write Phoebus screens (.bob) for running devices, from their PV descriptions."""
    with _reported(), tempfile.TemporaryDirectory() as scratch:
        for prefix in prefixes:
            with Device.connect(prefix, timeout=timeout) as proxy:
                config = proxy.config()
            kind = type_name or guess_type(config)
            model = local_model(kind, config, Path(scratch))
            print(write_screen(model, prefix, output, f"{kind} {prefix}"))
