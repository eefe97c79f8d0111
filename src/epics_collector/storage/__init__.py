"""Storage of recorded data: in-memory rings and crash-safe spill files."""

from epics_collector.storage._ring import Columns, Ring, concat
from epics_collector.storage._spill import SpillFile, write_json_atomic

__all__ = ["Columns", "Ring", "SpillFile", "concat", "write_json_atomic"]
