"""Fetch a PV's history with aapy's PbFetcher or JsonFetcher (as site scripts do).

Arguments: host port pv from to (POSIX seconds) pb|json. Prints JSON: values,
timestamps (float POSIX seconds, aapy's own), severities and enum options.
Run with PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python (aapy 0.12's generated code).
"""

from __future__ import annotations

import datetime
import json
import sys

from aa import js, pb


def main() -> None:
    host, port, pv, start, end, mode = sys.argv[1:7]
    fetcher = (pb.PbFetcher if mode == "pb" else js.JsonFetcher)(host, int(port))
    utc = datetime.UTC
    data = fetcher.get_values(
        pv,
        datetime.datetime.fromtimestamp(float(start), utc),
        datetime.datetime.fromtimestamp(float(end), utc),
    )
    json.dump(
        {
            "values": [v.tolist() if hasattr(v, "tolist") else v for v in data.values],
            "timestamps": [float(t) for t in data.timestamps],
            "severities": [int(s) for s in data.severities],
            "enum": {str(k): v for k, v in data.enum_options.items()},
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
