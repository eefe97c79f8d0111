"""A client that keeps opening and closing monitors of many PVs (the many-watchers test).

Usage: ``churn_client.py SECONDS PV...``. Until SECONDS have passed: subscribe to every
PV, hold the subscriptions 0.2-1.5 s, close them all, repeat. Its EPICS network is the
environment's (the test sets it). Prints ``updates N cycles M`` at the end.
"""

from __future__ import annotations

import random
import sys
import time
from typing import Any

from p4p.client.thread import Context


def main(seconds: float, names: list[str]) -> None:
    updates = cycles = 0

    def count(_: Any) -> None:
        nonlocal updates
        updates += 1

    deadline = time.monotonic() + seconds
    with Context("pva") as ctx:
        while time.monotonic() < deadline:
            subscriptions = [ctx.monitor(name, count, notify_disconnect=True) for name in names]
            time.sleep(random.uniform(0.2, 1.5))
            for subscription in subscriptions:
                subscription.close()
            cycles += 1
    print(f"updates {updates} cycles {cycles}", flush=True)


if __name__ == "__main__":
    main(float(sys.argv[1]), sys.argv[2:])
