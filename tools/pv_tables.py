"""Write the PV tables of the docs from the device declarations (``make docs``).

Each table sits between ``<!-- pv-table NAME -->`` and ``<!-- /pv-table -->`` in a
page; everything else on the page is written by hand. The test suite checks that the
committed pages equal what this script writes, so a table cannot drift from the code.
``python tools/pv_tables.py --check`` fails (exit 1) where a table is stale.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from epics_collector.collector import Collector
from epics_collector.core import (
    PVI,
    AttrR,
    Device,
    PvRow,
    attr_row,
    declared_rows,
    pvi_attr,
    rows_of,
    type_name,
)
from epics_collector.factory import Factory
from epics_collector.processing import Processing

DOCS = Path(__file__).resolve().parent.parent / "docs"
HEADER = ["| PV | type | access | meaning |", "|---|---|---|---|"]
SOURCE = "SOURCE:PV"  # the sample channels' source, named "the source PV" in the tables
KINDS = ("number", "string", "waveform", "image")


def _state_row(cls: type[Device[Any]], text: str) -> PvRow:
    return PvRow("State", f"NTEnum ({', '.join(str(s) for s in cls.States)})", "read", text)


def _own(cls: type[Device[Any]], state: str) -> list[str]:
    rows = [_state_row(cls, state), *declared_rows(cls, inherited=False)]
    return [row.markdown() for row in sorted(rows, key=lambda row: row.name)]


def common() -> list[str]:
    """The PVs every device serves."""
    state = "the device type's states; every type has `Fault`"
    pvi = attr_row(pvi_attr(PVI, dict))
    rows = [_state_row(Device, state), pvi, *declared_rows(Device)]
    return [row.markdown() for row in sorted(rows, key=lambda row: row.name)]


def collector() -> list[str]:
    """A collector's own PVs (not the base ones, not per channel)."""
    return _own(Collector, "Device state: `Recording` while recording, `Stopped` after it")


def channel() -> list[str]:
    """The PVs of one channel, by kind: made when a client asks for them."""
    channels = [{"pv": SOURCE, "alias": f"K{kind}", "kind": kind} for kind in KINDS]
    with tempfile.TemporaryDirectory() as data_dir:
        device = Collector({"channels": channels}, data_dir=Path(data_dir))
        by_suffix: dict[str, dict[str, tuple[AttrR[Any], str]]] = {}
        family = device.channel_pvs
        for kind in KINDS:
            for name in sorted(family.suffixes(device.recorder.by_alias[f"K{kind}"])):
                attr = family.make(f"K{kind}:{name}")
                by_suffix.setdefault(name, {})[kind] = (attr, type_name(attr.datatype))
                family.release(f"K{kind}:{name}")
    lines = []
    for suffix, kinds in sorted(by_suffix.items()):
        attr = next(iter(kinds.values()))[0]
        types = {kind_type for _, kind_type in kinds.values()}
        if len(types) == 1:
            shown = types.pop()
        else:
            shown = "; ".join(f"{kind}: {kind_type}" for kind, (_, kind_type) in kinds.items())
        row = rows_of([attr])[0]
        text = row.description.replace(SOURCE, "the source PV")
        if len(kinds) < len(KINDS):
            text = f"*{', '.join(kinds)} channels:* {text}"
        lines.append(PvRow(f"<alias>:{suffix}", shown, row.access, text).markdown())
    return lines


def processing() -> list[str]:
    """A processing device's own PVs (outputs and parameters come from its config)."""
    return _own(Processing, "Device state: `Running` while enabled and healthy")


def factory() -> list[str]:
    """A factory's own PVs."""
    rows = _own(Factory, "`Starting` while it restores its devices, then `Running`")
    return [row.replace("`P:", "`F:", 1) for row in rows]


TABLES: dict[str, tuple[str, Callable[[], list[str]]]] = {
    "common": ("reference/pvs.md", common),
    "collector": ("reference/collector.md", collector),
    "channel": ("reference/collector.md", channel),
    "processing": ("how-to/process-pvs.md", processing),
    "factory": ("how-to/run-a-factory.md", factory),
}
_BLOCK = re.compile(r"(<!-- pv-table (\S+) -->\n)(.*?)(<!-- /pv-table -->)", re.S)


def render(page: str, text: str) -> str:
    """``text`` (a page's content) with each of its tables written anew."""

    def table(match: re.Match[str]) -> str:
        name = match.group(2)
        where, rows = TABLES[name]
        if where != page:
            raise ValueError(f"table {name} belongs in {where}, not {page}")
        body = "\n".join([*HEADER, *rows()]) + "\n"
        return match.group(1) + body + match.group(4)

    return _BLOCK.sub(table, text)


def pages() -> dict[Path, tuple[str, str]]:
    """Each page with tables: its text now, and as it should be."""
    result = {}
    for page in sorted({where for where, _ in TABLES.values()}):
        path = DOCS / page
        text = path.read_text()
        result[path] = (text, render(page, text))
    return result


def main() -> int:
    """Write the tables (or with ``--check``, only say which are stale)."""
    check = "--check" in sys.argv[1:]
    stale = []
    for path, (now, wanted) in pages().items():
        if now != wanted:
            stale.append(path)
            if not check:
                path.write_text(wanted)
    if check and stale:
        print("stale PV tables (run: make docs):", *map(str, stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
