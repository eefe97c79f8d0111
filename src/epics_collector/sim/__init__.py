"""The simulated source IOC: a real EPICS 7 IOC with the records tests and the demo use."""

from epics_collector.sim._ioc import IMAGE_HEIGHT, IMAGE_WIDTH, READY_LINE, database_path
from epics_collector.sim._ioc import run as run_ioc
from epics_collector.sim._launch import PvaSource, SimIoc

__all__ = [
    "database_path",
    "IMAGE_HEIGHT",
    "IMAGE_WIDTH",
    "PvaSource",
    "READY_LINE",
    "run_ioc",
    "SimIoc",
]
