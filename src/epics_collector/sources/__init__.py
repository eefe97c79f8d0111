"""Source PVs for devices: PVAccess (p4p) and Channel Access (aioca) behind one interface."""

from epics_collector.sources._epics import EpicsSources
from epics_collector.sources._pva import PvaSources

__all__ = ["EpicsSources", "PvaSources"]
