"""Factory: create -> device ready and destroy times, and memory with 20 devices.

The raw limit for a process-per-device design is a child Python process that imports
p4p and serves one PV: measured the same way (spawn until a client get answers) in the
same run. Figures: p50 and max over ``--devices`` collectors created in a row (each
recording one sim IOC PV), the same for Destroy, the factory's resident memory with
all of them running, and the mean memory of one collector process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import numpy as np
import psutil
from p4p.client.thread import Context
from p4p.nt import NTURI

from _common import BenchParser, Network, report
from epics_collector.process import FactoryProcess
from epics_collector.sim import SimIoc

RAW_SERVER = """
import sys
from p4p.nt import NTScalar
from p4p.server import Server
from p4p.server.thread import SharedPV
pv = SharedPV(nt=NTScalar("d"), initial=0.0)
with Server(providers=[{sys.argv[1]: pv}]):
    print("ready", flush=True)
    sys.stdin.read()
"""


def _answered(network: Network, name: str, timeout: float = 30.0) -> None:
    """Get ``name`` with a new client (no cached channel), retrying until it answers."""
    with Context("pva", conf=network.client_conf(), useenv=False) as ctx:
        ctx.get(name, timeout=timeout)


def raw_process_starts(network: Network, count: int) -> list[float]:
    """Seconds from spawning a bare p4p server process until its PV answers.

    Like the factory, wait for the child to say it serves, then get with a new client
    (a client searching before the server exists would add its search back-off).
    """
    times = []
    for i in range(count):
        name = f"RAWSTART{i}"
        start = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-c", RAW_SERVER, name],
            env=network.environ(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            _answered(network, name)
            times.append(time.monotonic() - start)
        finally:
            assert child.stdin is not None
            child.stdin.close()
            child.wait(10)
    return times


def rpc(ctx: Context, pv: str, **arguments: str) -> Any:
    uri = NTURI([(key, "s") for key in arguments])
    return ctx.rpc(pv, uri.wrap(pv, kws=arguments), timeout=60)


def factory_figures(network: Network, source: str, count: int) -> dict[str, float]:
    figures: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory() as root,
        FactoryProcess("BFAC:", data_dir=Path(root), env=network.environ()) as factory,
        Context("pva", conf=network.client_conf(), useenv=False) as ctx,
    ):
        config = json.dumps({"channels": [source], "autostart": True})
        creates, answers = [], []
        for i in range(count):
            start = time.monotonic()
            prefix = cast(
                Any, rpc(ctx, "BFAC:Create", type="collector", name=f"c{i}", config=config)
            )
            returned = time.monotonic()
            _answered(network, prefix + "Count")
            creates.append(time.monotonic() - start)
            answers.append(time.monotonic() - returned)
        pids = [int(p) for p in cast(Any, ctx.get("BFAC:Devices")).value.pid]
        factory_rss = psutil.Process(factory.process.pid).memory_info().rss
        device_rss = [psutil.Process(pid).memory_info().rss for pid in pids]
        destroys = []
        for i in range(count):
            start = time.monotonic()
            rpc(ctx, "BFAC:Destroy", name=f"c{i}")
            destroys.append(time.monotonic() - start)
        figures.update(
            {
                "create -> ready p50 (s)": float(np.median(creates)),
                "create -> ready max (s)": max(creates),
                "PV answers after Create returned, max (s)": max(answers),
                "destroy p50 (s)": float(np.median(destroys)),
                "destroy max (s)": max(destroys),
                f"factory RSS with {count} devices (MB)": factory_rss / 1e6,
                "one collector process RSS, mean (MB)": float(np.mean(device_rss)) / 1e6,
            }
        )
    return figures


def main() -> None:
    parser = BenchParser(__doc__)
    parser.add_argument("--devices", type=int, default=20, quick=2)
    args = parser.parse_args()
    network = Network.loopback()
    os.environ.update(network.environ())
    raw = raw_process_starts(network, args.devices)
    raw_p50 = float(np.median(raw))
    with SimIoc("BSIM:", network.environ()) as ioc:
        figures = factory_figures(network, ioc.prefix + "Counter", args.devices)
    report(
        "factory: create/destroy devices",
        {
            "raw p4p server process start p50 (s)": raw_p50,
            "raw p4p server process start max (s)": max(raw),
            **figures,
            "create p50 / raw process start p50": figures["create -> ready p50 (s)"] / raw_p50,
        },
    )


if __name__ == "__main__":
    main()
