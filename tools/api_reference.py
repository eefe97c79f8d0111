"""Generate docs/reference/api.md from the client's docstrings (``make docs``).

The test suite checks that the committed page equals what this script writes, so the
reference cannot drift from the code.
"""

from __future__ import annotations

import inspect
import sys
from pathlib import Path

from epics_collector import client

PAGE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "api.md"
CLASSES = [
    "Factory",
    "Collector",
    "Processor",
    "Device",
    "History",
    "Binned",
    "ViewArgs",
    "DeviceInfo",
    "AsyncFactory",
    "AsyncCollector",
    "AsyncProcessor",
    "AsyncDevice",
    "ClientError",
    "DeviceError",
    "NoConnectionError",
    "AccessDeniedError",
    "EmptyExportWarning",
]


def _summary(obj: object) -> str:
    doc = inspect.getdoc(obj) or ""
    return " ".join(doc.split("\n\n")[0].split())


class _Shown(str):
    """An annotation shown as written (they are strings under ``from __future__``)."""

    def __repr__(self) -> str:
        return str(self)


def _signature(member: object) -> str:
    try:
        signature = inspect.signature(member)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return "(...)"
    empty = inspect.Parameter.empty
    parameters = [
        p.replace(annotation=_Shown(p.annotation) if p.annotation is not empty else empty)
        for p in signature.parameters.values()
        if p.name not in ("self", "cls")
    ]
    returned = signature.return_annotation
    shown = signature.replace(
        parameters=parameters,
        return_annotation=_Shown(returned) if returned is not empty else empty,
    )
    return str(shown)


def render() -> str:
    """The page's Markdown text."""
    lines = [
        "# Python client API",
        "",
        "Generated from the docstrings by `tools/api_reference.py` (`make docs`); a test",
        "keeps it current. Import from `epics_collector.client` (`Factory` and",
        "`AsyncFactory` also from `epics_collector`).",
        "",
    ]
    for name in CLASSES:
        cls = getattr(client, name)
        lines += [f"## `{name}`", "", _summary(cls), ""]
        own = [
            attr
            for attr, value in vars(cls).items()
            if not attr.startswith("_") and (callable(value) or isinstance(value, classmethod))
        ]
        for attr in own:
            member = getattr(cls, attr)
            lines.append(f"- `{attr}{_signature(member)}`: {_summary(member)}")
        if own:
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    """Write the page."""
    PAGE.write_text(render())
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
