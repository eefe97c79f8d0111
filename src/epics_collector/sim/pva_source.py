"""A p4p server of counter PVs posting at a set rate, for tests and benchmarks.

``python -m epics_collector.sim.pva_source --prefix P --channels N --rate HZ [--count C]
[--length L | --image ROWSxCOLS]`` serves ``P0000`` ... (NTScalar double, +1 per post;
with ``--length`` an NTScalarArray of L doubles all equal to the counter; with
``--image`` an NTNDArray of uint8 pixels whose ``uniqueId`` is the counter, the way an
areaDetector numbers its frames), ``P:Go`` (put 1 starts posting),
``P:Rate`` and ``P:Count`` (writable: rate and count of the next Go) and ``P:Posted``
(posts of the last Go per channel, updated when posting ends). ``--rate 0``
posts as fast as possible. Honours the EPICS environment; stops on SIGTERM or when
standard input closes.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time

import numpy as np
from p4p.nt import NTNDArray, NTScalar
from p4p.server import Server, StaticProvider
from p4p.server.thread import SharedPV

from epics_collector.process import as_child, notify_ready

READY = "pva source ready"


def channel_names(prefix: str, channels: int) -> list[str]:
    """PV names of the counters."""
    return [f"{prefix}{i:04d}" for i in range(channels)]


class _Go:
    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def put(self, pv: SharedPV, op: object) -> None:
        pv.post(1)
        self.event.set()
        op.done()  # type: ignore[attr-defined]


class _Setting:
    """A writable number."""

    def put(self, pv: SharedPV, op: object) -> None:
        pv.post(op.value())  # type: ignore[attr-defined]
        op.done()  # type: ignore[attr-defined]


class _Frames:
    """NTNDArray frames of uint8 noise numbered by ``uniqueId`` (made once, reused)."""

    def __init__(self, shape: tuple[int, int]) -> None:
        rng = np.random.default_rng(1)
        self._pixels = [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(16)]
        self._type = NTNDArray()

    def __call__(self, number: int, timestamp: float) -> object:
        value = self._type.wrap(self._pixels[number % len(self._pixels)], timestamp=timestamp)
        value["uniqueId"] = number
        return value


def post(
    pvs: list[SharedPV],
    rate: float,
    count: int,
    stop: threading.Event,
    length: int = 0,
    frames: _Frames | None = None,
) -> int:
    """Post counters to every PV at ``rate`` Hz (0: flat out) ``count`` times (0: forever)."""
    posted, started = 0, time.monotonic()
    while not stop.is_set() and (count == 0 or posted < count):
        if rate <= 0:
            due = count or posted + 1000
        else:
            due = int((time.monotonic() - started) * rate) + 1
            due = min(due, count) if count else due
        while posted < due and not stop.is_set():
            posted += 1
            now = time.time()
            if frames is not None:
                frame = frames(posted, now)
                for pv in pvs:
                    pv.post(frame)
                continue
            value = np.full(length, float(posted)) if length else float(posted)
            for pv in pvs:
                pv.post(value, timestamp=now)
        if rate > 0:
            time.sleep(min(0.001, 1.0 / rate))
    return posted


def main(argv: list[str] | None = None) -> None:
    """Serve the counters until stopped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--channels", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10.0, help="posts per second per PV")
    parser.add_argument("--count", type=int, default=0, help="posts per PV (0: forever)")
    parser.add_argument("--length", type=int, default=0, help="post arrays of this length")
    parser.add_argument("--image", default="", help="post uint8 NTNDArray frames, ROWSxCOLS")
    args = parser.parse_args(argv)
    as_child()
    go, stop = threading.Event(), threading.Event()
    frames: _Frames | None = None
    if args.image:
        rows, columns = (int(n) for n in args.image.lower().split("x"))
        frames = _Frames((rows, columns))
        pvs = [SharedPV(initial=frames(0, time.time())) for _ in range(args.channels)]
    else:
        nt, initial = (
            (NTScalar("ad"), np.zeros(args.length)) if args.length else (NTScalar("d"), 0.0)
        )
        pvs = [SharedPV(nt=nt, initial=initial) for _ in range(args.channels)]
    posted_pv = SharedPV(nt=NTScalar("l"), initial=0)
    provider = StaticProvider("pva-source")
    for name, pv in zip(channel_names(args.prefix, args.channels), pvs, strict=True):
        provider.add(name, pv)
    provider.add(f"{args.prefix}:Go", SharedPV(nt=NTScalar("i"), initial=0, handler=_Go(go)))
    provider.add(f"{args.prefix}:Posted", posted_pv)
    rate_pv = SharedPV(nt=NTScalar("d"), initial=args.rate, handler=_Setting())
    count_pv = SharedPV(nt=NTScalar("l"), initial=args.count, handler=_Setting())
    provider.add(f"{args.prefix}:Rate", rate_pv)
    provider.add(f"{args.prefix}:Count", count_pv)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    with Server(providers=[provider]):
        notify_ready(READY)
        while not stop.is_set():
            if go.wait(0.1):
                rate, count = float(rate_pv.current()), int(count_pv.current())
                posted_pv.post(post(pvs, rate, count, stop, args.length, frames))
                go.clear()


if __name__ == "__main__":
    main()
