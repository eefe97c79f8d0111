"""Retired recordings: read through their factory as fast as from a live collector.

A live collector (its own process, ``persist``) and a factory holding a retired
recording start on the same prewritten rows (``--samples``, 1e7). Measured in the same
run, each against the live collector's figure (the reference):

1. ``Query minmax`` of ``--points`` bins over every row: round trip, median of
   ``--repeats``, from the collector's ``P:Query`` and from the factory's ``F:Query``
   (after its first read, which loads the file: shown apart). Target >= 0.8x live.
2. ``getData.raw`` of ``--rows`` (1e6) rows through the retrieval service: a live
   collector's rows and a retired recording's. Target >= 0.8x live.
3. The factory's ``Heartbeat`` while it loads and reads the retired recording and a
   ``Create`` runs: the longest gap between two beats, less the beat's 1 s period
   (target <= 0.5 s), and the Create's time against one on an idle factory.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import numpy as np
from p4p.client.thread import Context
from p4p.nt import NTURI

from _common import BenchParser, Figure, Network, interleaved, prewritten_history, report, timed
from epics_collector.process import DeviceProcess, FactoryProcess, ManagedProcess, wait_for
from epics_collector.storage import describe
from retrieval import START, _iso, _port

RETIRED = "old.20260101-000000"


def _retired(data: Path, pv: str, samples: int) -> None:
    """A retired recording of channel ``H`` (source ``pv``) in a factory's data dir."""
    folder = data / RETIRED
    prewritten_history(folder, "H", samples)
    channels = [{"alias": "H", "pv": pv, "kind": "number"}]
    describe(
        folder, name="old", prefix="BRT:old:", created=START, destroyed=START, channels=channels
    )


def _call(ctx: Context, pv: str, **arguments: str) -> Any:
    uri = NTURI([(k, "s") for k in arguments]).wrap(pv, kws=arguments)
    return ctx.rpc(pv, uri, timeout=300)


class Beats:
    """Arrival times of a device's Heartbeat updates (a monitor)."""

    def __init__(self, ctx: Context, pv: str) -> None:
        self.times: list[float] = []
        self._sub = ctx.monitor(pv, lambda _: self.times.append(time.monotonic()))

    def stall(self, since: float) -> float:
        """The longest gap between beats after ``since``, less the 1 s period."""
        times = [t for t in self.times if t >= since] + [time.monotonic()]
        return max(np.diff(times), default=0.0) - 1.0

    def close(self) -> None:
        self._sub.close()


def queries(
    network: Network, samples: int, points: int, repeats: int, rounds: int
) -> dict[str, Figure]:
    with tempfile.TemporaryDirectory() as root:
        live_data, fac_data = Path(root) / "live", Path(root) / "factory"
        prewritten_history(live_data, "H", samples)
        _retired(fac_data, "BRT:H", samples)
        config = {"channels": [{"pv": "BRT:nosource", "alias": "H"}], "capacity": samples}
        config["persist"] = True
        with (
            DeviceProcess(
                "collector", "BRTL:", config, env=network.environ(), data_dir=live_data, timeout=300
            ),
            FactoryProcess("BRTF:", data_dir=fac_data, env=network.environ()),
            Context("pva", conf=network.client_conf(), useenv=False, nt=False) as ctx,
        ):
            beats = Beats(ctx, "BRTF:Heartbeat")
            wait_for(lambda: len(beats.times) >= 2, 10, "the factory's heartbeat")
            created = time.perf_counter()
            _call(ctx, "BRTF:Create", type="counter", name="idle", config="{}")
            create_idle = time.perf_counter() - created
            ask = {"alias": "H", "points": str(points), "operator": "minmax"}
            since = time.monotonic()
            create_busy: list[float] = []

            def create_meanwhile() -> None:
                time.sleep(0.2)  # the load has begun
                began = time.perf_counter()
                _call(ctx, "BRTF:Create", type="counter", name="busy", config="{}")
                create_busy.append(time.perf_counter() - began)

            creating = threading.Thread(target=create_meanwhile)
            creating.start()
            began = time.perf_counter()
            first = _call(ctx, "BRTF:Query", recording=RETIRED, **ask)
            load = time.perf_counter() - began
            creating.join()
            assert len(first["value"]["time"]) == points, "not every bin filled"
            runs = interleaved(  # each side: the median of ``repeats`` calls, per round
                rounds,
                live=lambda _: {"ms": timed(lambda: _call(ctx, "BRTL:Query", **ask), repeats)},
                retired=lambda _: {
                    "ms": timed(lambda: _call(ctx, "BRTF:Query", recording=RETIRED, **ask), repeats)
                },
            )
            live, retired = runs["live"]["ms"] * 1e3, runs["retired"]["ms"] * 1e3
            stall = beats.stall(since)
            beats.close()
    return {
        f"live Query minmax {points} of {samples:.0e}, median ms": live,
        "retired F:Query, same, median ms": retired,
        "retired first read (loads the file), s": load,
        "retired Query speed / live": live / retired,
        "factory Heartbeat stall during the reads, s": stall,
        "Create on an idle factory, s": create_idle,
        "Create during the first retired read, s": create_busy[0],
    }


def _read(url: str) -> float:
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as reply:
        while reply.read(1 << 20):
            pass
    return time.perf_counter() - started


def raw(network: Network, rows: int, rounds: int) -> dict[str, Figure]:
    with tempfile.TemporaryDirectory() as root:
        live_data, fac_data = Path(root) / "live", Path(root) / "factory"
        prewritten_history(live_data, "H", rows)
        _retired(fac_data, "BRR:old", rows)
        config = {"channels": [{"pv": "BRR:live", "alias": "H"}], "capacity": rows, "persist": True}
        port = _port()
        settings = Path(root) / "retrieval.yaml"
        settings.write_text(
            json.dumps(
                {
                    "factories": ["BRRF:"],
                    "collectors": ["BRRL:"],
                    "max_samples": 10 * rows,
                    "refresh": 0.5,
                }
            )
        )
        service = ManagedProcess(
            "epics_collector",
            ["retrieval", "--config", str(settings), "--port", str(port)],
            env=network.environ(),
        )
        with (
            DeviceProcess(
                "collector", "BRRL:", config, env=network.environ(), data_dir=live_data, timeout=300
            ),
            FactoryProcess("BRRF:", data_dir=fac_data, env=network.environ()),
            service,
        ):
            service.wait_ready(lambda: "retrieval on" in service.output(), 30)

            def url(pv: str) -> str:
                query = urllib.parse.urlencode(
                    {"pv": pv, "from": _iso(START - 1), "to": _iso(START + rows)}
                )
                return f"http://127.0.0.1:{port}/retrieval/data/getData.raw?{query}"

            def listed() -> bool:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/retrieval/bpl/getAllPVs?limit=-1"
                ) as r:
                    return {"BRR:live", "BRR:old"} <= set(json.loads(r.read()))

            wait_for(listed, 60, "both PVs listed")
            _read(url("BRR:old"))  # the factory loads the file once
            runs = interleaved(
                rounds,
                live=lambda _: {"s": _read(url("BRR:live"))},
                retired=lambda _: {"s": _read(url("BRR:old"))},
            )
            live, retired = runs["live"]["s"], runs["retired"]["s"]
    return {
        f"live getData.raw of {rows:.0e} rows, median s": live,
        "retired getData.raw, same, median s": retired,
        "retired getData.raw speed / live": live / retired,
    }


def main() -> None:
    parser = BenchParser(__doc__, runs=5)
    parser.add_argument("--samples", type=int, default=10_000_000, quick=1_000_000)
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3, help="calls per side per round")
    parser.add_argument("--rows", type=int, default=1_000_000, quick=100_000)
    args = parser.parse_args()
    network = Network.loopback()
    figures = queries(network, args.samples, args.points, args.repeats, args.runs)
    report(
        "retired recordings: Query",
        figures,
        {
            "retired Query speed / live": 0.8,
            "<= factory Heartbeat stall during the reads, s": 0.5,
        },
    )
    figures = raw(network, args.rows, max(3, args.runs))
    report("retired recordings: getData.raw", figures, {"retired getData.raw speed / live": 0.8})


if __name__ == "__main__":
    main()
