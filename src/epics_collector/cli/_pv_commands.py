"""``get``, ``put``, ``monitor``, ``call``: pvget/pvput/pvmonitor/pvcall on p4p.

They work on any PV (an IOC's, a device's) with the normal EPICS environment, so the
docs' examples run where no EPICS tools are installed.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from epics_collector.cli._app import Timeout, app, fail
from epics_collector.cli._pipe import PipeClosedError
from epics_collector.process import StopRequest
from epics_collector.pva import BadValueError, Network, PvTool, ToolError, pv_format

TimeoutOption = Timeout
Names = Annotated[list[str], typer.Argument(metavar="PV...", help="PV names")]


@contextmanager
def _tool(timeout: float) -> Iterator[PvTool]:
    """A client on the EPICS environment; its errors become one line and exit code 1.

    A value that does not fit the PV (``put SIM:Setpoint abc``) is exit code 2.
    """
    try:
        with PvTool(Network.from_environment(), timeout) as tool:
            yield tool
    except BadValueError as error:  # the value given does not fit the PV: exit 2
        raise fail(str(error), 2) from None
    except ToolError as error:
        raise fail(str(error), 1) from None


def _show(name: str, value: Any) -> None:
    if pv_format.is_table(value):
        print(f"{name}  {pv_format.stamp(value)}".rstrip())
        print(pv_format.table_text(value))
    else:
        print(pv_format.line(name, value))


@app.command()
def get(names: Names, timeout: TimeoutOption = 5.0) -> None:
    """Print the values of PVs (like pvget): time, value (enum by name), alarm; tables."""
    with _tool(timeout) as tool:
        for name in names:
            _show(name, tool.get(name))


@app.command(context_settings={"ignore_unknown_options": True})  # put PV -5
def put(
    name: Annotated[str, typer.Argument(metavar="PV", help="PV name")],
    values: Annotated[
        list[str],
        typer.Argument(
            metavar="VALUE...", help="the value (enum: a choice's name); array: its elements"
        ),
    ],
    timeout: TimeoutOption = 5.0,
    allow_nonfinite: Annotated[
        bool,
        typer.Option(
            "--allow-nonfinite", help="send inf, -inf or nan (refused otherwise, as typos)"
        ),
    ] = False,
) -> None:
    """Put a value to a PV (like pvput) and print the old and the new value."""
    with _tool(timeout) as tool:
        old, new = tool.put_text(name, values, allow_nonfinite)
        print(f"Old : {pv_format.line(name, old)}")
        print(f"New : {pv_format.line(name, new)}")


@app.command()
def monitor(
    names: Names,
    count: Annotated[
        int, typer.Option(metavar="N", min=0, help="stop after N updates (0: until Ctrl-C)")
    ] = 0,
    timeout: TimeoutOption = 5.0,
) -> None:
    """Print every update of PVs (like pvmonitor) until Ctrl-C, or N updates."""
    stop = StopRequest().install()
    seen, lock = [0], threading.Lock()
    done = threading.Event()
    closed: list[PipeClosedError] = []  # the reader of standard output went away
    connected: set[str] = set()

    def show(name: str, value: Any) -> None:
        with lock:
            if done.is_set():
                return
            try:
                _show_update(name, value)
            except PipeClosedError as error:  # on p4p's thread: the main thread ends it
                closed.append(error)
                done.set()
            else:
                seen[0] += int(not isinstance(value, Exception))
                if count and seen[0] >= count:
                    done.set()
            if done.is_set():
                stop.wake()

    def _show_update(name: str, value: Any) -> None:
        if isinstance(value, Exception):
            if name in connected:  # not the "not yet connected" p4p sends first
                connected.discard(name)
                print(f"{name}  <{str(value) or type(value).__name__}>", flush=True)
            return
        connected.add(name)
        _show(name, value)
        sys.stdout.flush()

    with _tool(timeout) as tool:
        subscriptions = [tool.monitor(name, lambda v, n=name: show(n, v)) for name in names]
        try:
            while not done.is_set() and not stop.wait():  # woken by Ctrl-C or the count
                pass
        finally:
            for subscription in subscriptions:
                subscription.close()
    if closed:
        raise closed[0]


@app.command()
def call(
    name: Annotated[str, typer.Argument(metavar="PV", help="RPC PV name, e.g. P:Create")],
    arguments: Annotated[
        list[str] | None,
        typer.Argument(metavar="KEY=VALUE...", help="string arguments (an NTURI query)"),
    ] = None,
    timeout: TimeoutOption = 30.0,
) -> None:
    """Call an RPC PV (like pvcall) with KEY=VALUE arguments; print its answer."""
    query: dict[str, str] = {}
    for argument in arguments or []:
        key, sep, value = argument.partition("=")
        if not sep or not key:
            raise fail(f"{argument!r}: give arguments as KEY=VALUE")
        query[key] = value
    with _tool(timeout) as tool:
        answer = tool.call(name, query)
    if pv_format.is_table(answer):
        print(pv_format.table_text(answer))
    else:
        print(pv_format.value_text(answer))
