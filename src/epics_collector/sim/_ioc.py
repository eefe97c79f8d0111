"""Run the simulated source IOC in this process (a real EPICS 7 IOC with QSRV and RSRV).

This starts the IOC exactly as ``python -m pvxslibs.ioc -d sim.db`` does, then adds a
thread that fills the array records, which a database alone cannot generate.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from importlib import resources
from pathlib import Path

IMAGE_WIDTH, IMAGE_HEIGHT = 128, 96
READY_LINE = "sim IOC ready"


def database_path() -> Path:
    """The ``sim.db`` shipped in the package."""
    return Path(str(resources.files("epics_collector.sim").joinpath("sim.db")))


def run(prefix: str) -> None:
    """Start the IOC and its generator; return when stdin closes or on SIGTERM/SIGINT."""
    os.environ.setdefault("PVXS_QSRV_ENABLE", "YES")
    import pvxslibs.path
    from epicscorelibs import ioc

    from epics_collector.sim._generator import ArrayGenerator

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
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"{READY_LINE} with prefix {prefix}", flush=True)
    try:
        sys.stdin.read()  # an IOC shell's convention: stop when standard input closes
    except KeyboardInterrupt:
        pass
    finally:
        generator.stop()


def main(argv: list[str] | None = None) -> None:
    """``python -m epics_collector.sim --prefix SIM:``."""
    parser = argparse.ArgumentParser(description="Simulated source IOC for EPICS Collector")
    parser.add_argument("--prefix", default="SIM:", help="record name prefix (default SIM:)")
    run(parser.parse_args(argv).prefix)
