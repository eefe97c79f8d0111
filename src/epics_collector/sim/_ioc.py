"""Run the simulated source IOC in this process (a real EPICS 7 IOC with QSRV and RSRV).

This starts the IOC exactly as ``python -m pvxslibs.ioc -d sim.db`` does, then adds a
thread that fills the array records, which a database alone cannot generate.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from importlib import resources
from pathlib import Path

from epics_collector.process import StopRequest, as_child, notify_ready

IMAGE_WIDTH, IMAGE_HEIGHT = 128, 96
READY_LINE = "sim IOC ready"


def database_path() -> Path:
    """The ``sim.db`` shipped in the package."""
    return Path(str(resources.files("epics_collector.sim").joinpath("sim.db")))


def run(prefix: str, *, until_stdin_closes: bool = True) -> None:
    """Start the IOC and its generator; return on SIGTERM/SIGINT (or when stdin closes).

    ``until_stdin_closes`` keeps an IOC shell's convention for a child whose owner holds
    its standard input; the ``sim-ioc`` command turns it off, so that it runs in the
    background (``&``) or with standard input from ``/dev/null``.
    """
    os.environ.setdefault("PVXS_QSRV_ENABLE", "YES")
    import pvxslibs.path
    from epicscorelibs import ioc

    from epics_collector.sim._generator import ArrayGenerator

    stop = StopRequest().install()
    macros = f"P={prefix},IMAGE_WIDTH={IMAGE_WIDTH},IMAGE_HEIGHT={IMAGE_HEIGHT}"
    macros += f",IMAGE_SIZE={IMAGE_WIDTH * IMAGE_HEIGHT}"
    ioc.start_ioc(
        dbs=[(str(database_path()), macros)],
        extra_dbd_load=(("pvxsIoc.dbd", pvxslibs.path.dbd_path),),
        extra_dso_load=("pvxslibs.lib.pvxsIoc",),
    )
    generator = ArrayGenerator(ioc.dbCore, prefix, IMAGE_WIDTH, IMAGE_HEIGHT)
    generator.step(0)
    generator.start()
    notify_ready(f"{READY_LINE} with prefix {prefix}")
    if until_stdin_closes:
        threading.Thread(target=_read_to_end, args=(stop,), daemon=True).start()
    try:
        stop.wait()
    finally:
        generator.stop()


def _read_to_end(stop: StopRequest) -> None:
    sys.stdin.read()
    stop.request(signal.SIGTERM)  # as if the owner had stopped us


def main(argv: list[str] | None = None) -> None:
    """``python -m epics_collector.sim --prefix SIM:``."""
    parser = argparse.ArgumentParser(description="Simulated source IOC for EPICS Collector")
    parser.add_argument("--prefix", default="SIM:", help="record name prefix (default SIM:)")
    as_child()
    run(parser.parse_args(argv).prefix)
