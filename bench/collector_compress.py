"""Compression and waveform recording, as ratios to raw p4p measured in the same run.

1. Lossless input rate with ``mean`` N=10 vs ``every`` (target: mean >= 0.9 x every),
   both against a raw p4p monitor of the same flat-out source.
2. Waveforms of 1e4 doubles posted as fast as a p4p server can: MB/s recorded by a
   collector vs MB/s received by a raw p4p monitor (target >= 0.9), alternated three
   times, medians.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from tempfile import TemporaryDirectory

from _common import Network, report
from collector_throughput import collector_flat_out, raw_flat_out


def median_figures(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over ``runs``."""
    return {key: float(statistics.median(run[key] for run in runs)) for key in runs[0]}


def main() -> None:
    """Run every measurement and print the figures."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--updates", type=int, default=200_000, help="scalar updates")
    parser.add_argument("--arrays", type=int, default=30_000, help="waveform updates")
    parser.add_argument("--length", type=int, default=10_000, help="waveform length")
    parser.add_argument("--repeats", type=int, default=3, help="waveform runs of each")
    args = parser.parse_args()
    network = Network.loopback()
    with TemporaryDirectory() as tmp:
        data = Path(tmp)
        raw = raw_flat_out(network, args.updates)
        report("raw p4p monitor, scalars flat out", raw)
        every = collector_flat_out(network, args.updates, data / "every")
        every["ratio vs raw p4p"] = every["inputs recorded per s"] / raw["received per s"]
        report("collector, compress every", every, {"ratio vs raw p4p": 0.9})
        mean = collector_flat_out(
            network,
            args.updates,
            data / "mean",
            {"compress": {"algorithm": "mean", "n": 10}},
            per_output=10,
        )
        mean["ratio vs raw p4p"] = mean["inputs recorded per s"] / raw["received per s"]
        mean["ratio mean N=10 vs every"] = (
            mean["inputs recorded per s"] / every["inputs recorded per s"]
        )
        report("collector, compress mean N=10", mean, {"ratio mean N=10 vs every": 0.9})
        # arrays are noisy on two shared cores: alternate raw and collector, take medians
        raws, waves = [], []
        for attempt in range(args.repeats):
            raws.append(raw_flat_out(network, args.arrays, args.length))
            waves.append(
                collector_flat_out(
                    network,
                    args.arrays,
                    data / f"wave{attempt}",
                    {"kind": "waveform"},
                    length=args.length,
                    capacity=500,  # a ring of 40 MB: memory is not what is measured here
                )
            )
        raw_wave = median_figures(raws)
        report(f"raw p4p monitor, {args.length} doubles flat out (median)", raw_wave)
        wave = median_figures(waves)
        wave["ratio MB per s vs raw p4p"] = wave["MB per s"] / raw_wave["MB per s"]
        wave["ratios of the runs, lowest"] = min(
            w["MB per s"] / r["MB per s"] for w, r in zip(waves, raws, strict=True)
        )
        report(
            f"collector, waveform of {args.length} doubles",
            wave,
            {"ratio MB per s vs raw p4p": 0.9},
        )


if __name__ == "__main__":
    main()
