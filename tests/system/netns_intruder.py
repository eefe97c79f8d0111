"""A client on an untrusted host (a network namespace): tries what the policy forbids.

Usage: ``netns_intruder.py FACTORY_PREFIX COLLECTOR_PREFIX PROCESSING_PREFIX``. Prints
JSON ``{operation: "ok" | error text}`` for each attempt; reads must answer, every write
must be refused.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from p4p.client.thread import Context
from p4p.nt import NTURI


def main(factory: str, collector: str, processing: str) -> None:
    results: dict[str, str] = {}
    with Context("pva") as ctx:

        def attempt(label: str, action: Any) -> None:
            try:
                action()
                results[label] = "ok"
            except Exception as error:
                results[label] = str(error)

        def call(pv: str, **arguments: str) -> Any:
            uri = NTURI([(key, "s") for key in arguments])
            return ctx.rpc(pv, uri.wrap(pv, kws=arguments), timeout=10)

        attempt("read", lambda: ctx.get(collector + "Count", timeout=10))
        for pv in ("Stop", "Clear"):
            attempt(pv, lambda pv=pv: ctx.put(collector + pv, 1, timeout=10))
        attempt("Export", lambda: ctx.put(collector + "Export", "stolen", timeout=10))
        attempt("Annotate", lambda: ctx.put(collector + "Annotate", "hi", timeout=10))
        attempt("Push", lambda: call(collector + "Push", channel="x", value="1"))
        attempt("FeedbackEnable", lambda: ctx.put(processing + "FeedbackEnable", 1, timeout=10))
        attempt("Param", lambda: ctx.put(processing + "Param:kp", 9.0, timeout=10))
        attempt("Create", lambda: call(factory + "Create", type="counter", name="evil"))
    print(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:4])
