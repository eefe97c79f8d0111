"""Export speed and memory: a collector's NeXus export vs h5py writing the same arrays.

10 channels x 1e6 samples (by default) are put into a real recorder; then
1. h5py writes the same arrays directly (time, value, severity, status per channel);
2. the collector's export gathers the rows (one copy, as the device does) and writes NeXus.
Prints MB/s of both and their ratio (the median over ``--runs`` interleaved rounds, each
file deleted after its round), and the peak extra memory of the export (tracemalloc, in
a run of its own) relative to the data size.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from tempfile import TemporaryDirectory

import h5py
import numpy as np

from _common import BenchParser, interleaved, report
from epics_collector.collector import CollectorConfig, Recorder
from epics_collector.collector._exporting import gather
from epics_collector.storage import Columns, write_nexus


def filled_recorder(channels: int, samples: int) -> Recorder:
    """A recorder whose channels hold ``samples`` rows each."""
    config = CollectorConfig.model_validate(
        {"channels": [f"BENCH:CH{i}" for i in range(channels)], "capacity": samples}
    )
    recorder = Recorder(config, lambda event, channel: None)
    rng = np.random.default_rng(0)
    t = 1.7e9 + np.arange(samples) * 0.001
    for channel in recorder.channels:
        values = rng.normal(size=samples)
        zeros = np.zeros(samples, np.int8)
        recorder.unflushed.restore(channel, Columns(t, values, zeros, zeros))
    return recorder


def h5py_direct(path: Path, recorder: Recorder) -> float:
    """Seconds for h5py to write every channel's four arrays."""
    columns = [recorder.history.rows(c) for c in recorder.channels]
    started = time.perf_counter()
    with h5py.File(path, "w") as f:
        for channel, rows in zip(recorder.channels, columns, strict=True):
            group = f.create_group(channel.alias)
            group["time"] = rows.time
            group["value"] = rows.value
            group["severity"] = rows.severity
            group["status"] = rows.status
    return time.perf_counter() - started


def collector_export(path: Path, recorder: Recorder) -> float:
    """Seconds of gather + write_nexus."""
    started = time.perf_counter()
    write_nexus(path, gather("BENCH:", "{}", recorder.history, None, []))
    return time.perf_counter() - started


def export_peak(path: Path, recorder: Recorder) -> int:
    """Peak extra bytes of an export (tracemalloc: an untimed run, it slows allocation)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    write_nexus(path, gather("BENCH:", "{}", recorder.history, None, []))
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def main() -> None:
    """Run both and print the figures."""
    parser = BenchParser(__doc__, runs=5)
    parser.add_argument("--channels", type=int, default=10)
    parser.add_argument("--samples", type=int, default=1_000_000, quick=100_000)
    args = parser.parse_args()
    recorder = filled_recorder(args.channels, args.samples)
    data_mb = args.channels * args.samples * 18 / 1e6
    with TemporaryDirectory() as tmp:
        root = Path(tmp)

        def side(write: Callable[[Path, Recorder], float], name: str) -> dict[str, float]:
            path = root / name
            seconds = write(path, recorder)
            path.unlink()  # each round writes into the same free space
            return {"MB per s": data_mb / seconds}

        runs = interleaved(
            args.runs,
            h5py=lambda _: side(h5py_direct, "direct.h5"),
            ours=lambda _: side(collector_export, "export.nxs"),
        )
        peak = export_peak(root / "peak.nxs", recorder)
        size = (root / "peak.nxs").stat().st_size
    report(
        f"export of {args.channels} channels x {args.samples:g} samples",
        {
            "data MB": data_mb,
            "h5py direct MB per s": runs["h5py"]["MB per s"],
            "collector export MB per s": runs["ours"]["MB per s"],
            "ratio collector / h5py": runs["ours"]["MB per s"] / runs["h5py"]["MB per s"],
            "file MB": size / 1e6,
            "peak extra memory / data size": peak / (data_mb * 1e6),
        },
        {"ratio collector / h5py": 0.8},
    )


if __name__ == "__main__":
    main()
