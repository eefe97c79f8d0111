"""Compression and waveform recording, as ratios to raw p4p measured in the same run.

1. Lossless input rate with ``mean`` N=10 vs ``every`` (target: mean >= 0.9 x every),
   both against a raw p4p monitor of the same flat-out source.
2. Waveforms of 1e4 doubles posted as fast as a p4p server can: MB/s recorded by a
   collector vs MB/s received by a raw p4p monitor (target >= 0.9).

Every ratio is the median over ``--runs`` interleaved rounds (raw and ours in turn).
"""

from __future__ import annotations

from pathlib import Path
from tempfile import TemporaryDirectory

from _common import BenchParser, Network, interleaved, report
from collector_throughput import collector_flat_out, raw_flat_out


def main() -> None:
    """Run every measurement and print the figures."""
    parser = BenchParser(__doc__)
    parser.add_argument("--updates", type=int, default=200_000, quick=20_000, help="scalars")
    parser.add_argument("--arrays", type=int, default=30_000, quick=3000, help="waveforms")
    parser.add_argument("--length", type=int, default=10_000, help="waveform length")
    args = parser.parse_args()
    network = Network.loopback()
    with TemporaryDirectory() as tmp:
        data = Path(tmp)
        mean_n10 = {"compress": {"algorithm": "mean", "n": 10}}
        scalars = interleaved(
            args.runs,
            every=lambda i: collector_flat_out(network, args.updates, data / f"every{i}"),
            mean=lambda i: collector_flat_out(
                network, args.updates, data / f"mean{i}", mean_n10, per_output=10
            ),
            raw=lambda _: raw_flat_out(network, args.updates),
        )
        raw, every, mean = scalars["raw"], scalars["every"], scalars["mean"]
        report("raw p4p monitor, scalars flat out", raw)
        rate = "inputs recorded per s"
        report(
            "collector, compress every",
            {**every, "ratio vs raw p4p": every[rate] / raw["received per s"]},
            {"ratio vs raw p4p": 0.9},
        )
        report(
            "collector, compress mean N=10",
            {
                **mean,
                "ratio vs raw p4p": mean[rate] / raw["received per s"],
                "ratio mean N=10 vs every": mean[rate] / every[rate],
            },
            {"ratio mean N=10 vs every": 0.9},
        )
        waves = interleaved(
            args.runs,
            ours=lambda i: collector_flat_out(
                network,
                args.arrays,
                data / f"wave{i}",
                {"kind": "waveform"},
                length=args.length,
                capacity=500,  # a ring of 40 MB: memory is not what is measured here
            ),
            raw=lambda _: raw_flat_out(network, args.arrays, args.length),
        )
        report(f"raw p4p monitor, {args.length} doubles flat out", waves["raw"])
        report(
            f"collector, waveform of {args.length} doubles",
            {
                **waves["ours"],
                "ratio MB per s vs raw p4p": waves["ours"]["MB per s"] / waves["raw"]["MB per s"],
            },
            {"ratio MB per s vs raw p4p": 0.9},
        )


if __name__ == "__main__":
    main()
