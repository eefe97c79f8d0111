"""Decode a PB/HTTP response with aapy (the Archiver Appliance's Python client).

Reads the response from stdin and prints JSON: per chunk its PayloadInfo and every
event's raw fields. aapy 0.12's generated protobuf code needs the pure-Python
protobuf implementation, so this runs in a process of its own with
PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aa import pb


def _value(value: object) -> object:
    if isinstance(value, bytes):
        return list(value)
    if hasattr(value, "__iter__") and not isinstance(value, str):
        return [_value(v) for v in value]  # type: ignore[union-attr]
    return value


def main() -> None:
    raw = sys.stdin.buffer.read()
    chunks = []
    for part in [c for c in raw.split(b"\n\n") if c.strip()]:
        lines = part.strip(b"\n").split(b"\n")
        info: Any = pb.ee.PayloadInfo()  # generated protobuf code: untyped
        info.ParseFromString(pb.unescape_bytes(lines[0]))
        events = []
        for line in lines[1:]:
            event = pb.TYPE_MAPPINGS[info.type]()
            event.ParseFromString(pb.unescape_bytes(line))
            events.append(
                {
                    "secondsintoyear": event.secondsintoyear,
                    "nano": event.nano,
                    "val": _value(event.val),
                    "severity": event.severity,
                    "status": event.status,
                }
            )
        chunks.append(
            {
                "type": info.type,
                "pvname": info.pvname,
                "year": info.year,
                "elementCount": info.elementCount,
                "headers": {h.name: h.val for h in info.headers},
                "events": events,
                "enum": pb.parse_enum_options_from_PayloadInfo(info),
            }
        )
    json.dump(chunks, sys.stdout)


if __name__ == "__main__":
    main()
