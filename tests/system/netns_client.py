"""Client side of the two-host test, run inside a network namespace.

Usage: ``netns_client.py SOURCE_PV FACTORY_PREFIX...``. Creates a collector of SOURCE_PV
on each factory, waits for samples, prints each history as JSON. Its EPICS network is
whatever the environment says (the test sets it per namespace).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, cast

from p4p.client.thread import Context
from p4p.nt import NTURI


def main(source: str, factories: list[str]) -> None:
    uri = NTURI([("type", "s"), ("name", "s"), ("config", "s")])
    config = json.dumps({"channels": [{"pv": source, "alias": "c"}], "autostart": True})
    with Context("pva") as ctx:
        prefixes = []
        for factory in factories:
            arguments = {"type": "collector", "name": "remote", "config": config}
            request = uri.wrap(factory + "Create", kws=arguments)
            prefixes.append(cast(Any, ctx.rpc(factory + "Create", request, timeout=30)) + "")
        deadline = time.monotonic() + 20
        while min(int(cast(Any, ctx.get(p + "Count"))) for p in prefixes) < 5:
            if time.monotonic() > deadline:
                raise SystemExit("collectors did not record 5 samples in 20 s")
            time.sleep(0.1)
        histories = {p: [float(v) for v in cast(Any, ctx.get(p + "c:Value"))] for p in prefixes}
        print(json.dumps(histories))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
