"""Client: ``history()`` of 1e6 samples vs a raw p4p get of the same PV, same run.

A persisting collector is started on a pre-written spill file of ``--samples`` rows.
Both sides get its ``HIST:Table`` (time, value, severity, status): the raw side with
p4p's thread client, ours with ``Collector.history()`` (which also looks the channel up
in ``Channels`` and returns numpy arrays).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from p4p.client.thread import Context

from _common import BenchParser, Network, interleaved, prewritten_history, report, timed
from epics_collector.client import Collector
from epics_collector.process import DeviceProcess


def main() -> None:
    parser = BenchParser(__doc__, runs=5)
    parser.add_argument("--samples", type=int, default=1_000_000, quick=100_000)
    parser.add_argument("--repeats", type=int, default=5, help="gets per side per round")
    args = parser.parse_args()
    network = Network.loopback()
    with tempfile.TemporaryDirectory() as root:
        data = Path(root)
        prewritten_history(data, "HIST", args.samples)
        config = {
            "channels": [{"pv": "NOPE:HIST", "alias": "HIST"}],
            "capacity": args.samples,
            "persist": True,
        }
        with (
            DeviceProcess("collector", "BCL:", config, env=network.environ(), data_dir=data),
            Context("pva", conf=network.client_conf(), useenv=False) as ctx,
            Collector.connect("BCL:", network=network, timeout=30) as col,
        ):
            assert len(col.history("HIST").time) == args.samples  # opens the on-demand PV
            ctx.get("BCL:HIST:Table", timeout=30)
            runs = interleaved(  # medians of --repeats gets, in --runs rounds
                args.runs,
                raw=lambda _: {
                    "ms": timed(lambda: ctx.get("BCL:HIST:Table", timeout=30), args.repeats) * 1e3
                },
                ours=lambda _: {"ms": timed(lambda: col.history("HIST"), args.repeats) * 1e3},
                by_pv=lambda _: {"ms": timed(lambda: col.history("NOPE:HIST"), args.repeats) * 1e3},
            )
    raw, ours, by_pv = (runs[k]["ms"] for k in ("raw", "ours", "by_pv"))
    report(
        f"client history() of {args.samples:,} samples",
        {
            "raw p4p get of HIST:Table, median ms": raw,
            "Collector.history(alias), median ms": ours,
            "Collector.history(source PV name), median ms": by_pv,
            "rate ratio ours / raw": raw / ours,
            "MB per s (ours, 4 columns)": args.samples * 18 / ours.median / 1e3,
        },
        {"rate ratio ours / raw": 0.9},
    )


if __name__ == "__main__":
    main()
