"""The simulated source IOC: a real EPICS 7 IOC with the records tests and the demo use."""

from epics_collector._startup import light_loader_helpers

light_loader_helpers()  # (before p4p is imported: see epics_collector._startup)

from epics_collector.sim._ioc import (  # noqa: E402
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    READY_LINE,
    database_path,
)
from epics_collector.sim._ioc import run as run_ioc  # noqa: E402
from epics_collector.sim._launch import PvaSource, SimIoc  # noqa: E402

__all__ = [
    "database_path",
    "IMAGE_HEIGHT",
    "IMAGE_WIDTH",
    "PvaSource",
    "READY_LINE",
    "run_ioc",
    "SimIoc",
]
