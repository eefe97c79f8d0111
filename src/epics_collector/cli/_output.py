"""How the command line shows results: rich tables for people, JSON/CSV for scripts."""

from __future__ import annotations

import csv
import importlib
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from epics_collector.client import Binned, History
from epics_collector.core import Status
from epics_collector.pva import Display, Network, PvTool, pv_format

#: Standard output: no markup or emoji codes in data (``LAB:FAX:`` is a PV name).
out = Console(highlight=False, emoji=False, markup=False)
plain = pv_format.plain  # JSON-friendly values, one rule for every output
SEVERITY = {0: "", 1: "MINOR", 2: "MAJOR", 3: "INVALID"}
STATUS = {status.value: status.name for status in Status}  # PVA alarm_t.status


def counted(number: int, noun: str) -> str:
    """``1 device``, ``2 devices``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def print_json(data: Any) -> None:
    """Print ``data`` as JSON on standard output."""
    print(json.dumps(data, default=plain))


def print_rows(title: str, rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> None:
    """A table of ``rows`` (mappings) with ``columns``.

    On a terminal a boxed table under ``title``; into a pipe or a file plain aligned
    columns at full width (a header line, then one line per row, nothing cut).
    """
    cells = [[" ".join(str(plain(row[c])).split()) for c in columns] for row in rows]
    if not out.is_terminal:
        widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
        for line in [list(columns), *cells]:
            print(
                "  ".join(
                    cell.ljust(width) for cell, width in zip(line, widths, strict=True)
                ).rstrip()
            )
        return
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for line in cells:
        table.add_row(*line)
    out.print(table)


iso = pv_format.iso  # POSIX seconds as ISO 8601 UTC, one rule for every output


def history_rows(history: History | Binned, last: int | None) -> list[dict[str, Any]]:
    """The rows of a history (or its bins) as dicts (the newest ``last`` only, if given)."""
    n = len(history.time)
    start = max(0, n - last) if last else 0
    if isinstance(history, Binned):
        columns = {"value": history.value, "min": history.min, "max": history.max}
        columns["count"] = history.count
        present = {k: v for k, v in columns.items() if v is not None}
        return [
            {"time": float(history.time[i]), **{k: plain(v[i]) for k, v in present.items()}}
            for i in range(start, n)
        ]
    rows = []
    for i in range(start, n):
        row: dict[str, Any] = {"time": float(history.time[i])}
        if history.value is not None:
            row["value"] = plain(history.value[i])
        row["severity"] = int(history.severity[i])
        row["status"] = int(history.status[i])
        rows.append(row)
    return rows


def source_display(pv: str, timeout: float) -> Display:
    """The source's units and precision; none if it cannot be read now (PVA only)."""
    scheme, _, rest = pv.partition("://")
    if rest and scheme != "pva":
        return Display()
    try:
        with PvTool(Network.from_environment(), timeout) as tool:
            return Display.of(tool.get(rest or pv))
    except Exception:  # no display to follow: shown as recorded
        return Display()


def print_history(
    channel: str, rows: list[dict[str, Any]], fmt: str, display: Display | None = None
) -> None:
    """Rows as a table (PREC, units, alarm names), CSV or JSON (as recorded)."""
    display = display or Display()
    if fmt == "json":
        print_json(rows)
    elif fmt == "csv":
        columns = list(rows[0]) if rows else ["time", "value", "severity", "status"]
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    else:
        shown = [_shown(row, display) for row in rows]
        columns = list(rows[0]) if rows else ["time", "value", "severity", "status"]
        units = f" ({display.units})" if display.units else ""
        print_rows(f"{channel}{units}: {counted(len(rows), 'row')}", shown, columns)


def _shown(row: dict[str, Any], display: Display) -> dict[str, Any]:
    """A history row for people: ISO time, the PV's precision, alarm names."""
    shown = {key: display.text(item) for key, item in row.items()}
    shown["time"] = iso(row["time"])
    if "severity" in row:
        shown["severity"] = SEVERITY.get(row["severity"], str(row["severity"]))
    if "status" in row:
        status = row["status"]
        shown["status"] = "" if status == 0 else STATUS.get(status, str(status))
    return shown


def plot_history(channel: str, history: History | Binned, display: Display | None = None) -> None:
    """A terminal plot of a numeric history (value against seconds from the first).

    Drawn in the terminal's own colours (no white block on a dark terminal), with the
    source's units on the value axis.
    """
    plt: Any = importlib.import_module("plotext")  # its functions are not typed
    display = display or Display()

    if history.value is None or history.value.ndim != 1 or not len(history.time):
        out.print(f"{channel}: nothing numeric to plot")
        return
    plt.clear_figure()
    seconds = (history.time - history.time[0]).tolist()
    if isinstance(history, Binned) and history.min is not None and history.max is not None:
        plt.plot(seconds, history.min.tolist(), label="min")
        plt.plot(seconds, history.max.tolist(), label="max")
    plt.plot(seconds, history.value.tolist())
    plt.title(f"{channel} ({len(history.time)} samples, from {iso(history.time[0])})")
    plt.theme("clear")  # the terminal's background and text colours
    plt.xlabel("s")
    if display.units:
        plt.ylabel(display.units)
    plt.plotsize(min(out.width, 100), 20)
    figure = plt.build()
    print(figure if out.is_terminal else plt.uncolorize(figure))  # no codes into a pipe
