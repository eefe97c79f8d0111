"""Storage of recorded data: in-memory rings, crash-safe spill files, exports."""

from epics_collector.storage._export import (
    ChannelData,
    ExportData,
    SnapshotData,
    write_csv,
    write_nexus,
)
from epics_collector.storage._lock import DirectoryBusyError, DirectoryLock
from epics_collector.storage._older import Boundary, OlderRows, boundary_of
from epics_collector.storage._paths import (
    PathError,
    confined_path,
    existing_inside,
    names_inside,
    new_file,
    open_inside,
)
from epics_collector.storage._policy import (
    Duration,
    RetentionRule,
    RetentionSettings,
    Size,
    byte_count,
    rule_for,
    seconds,
)
from epics_collector.storage._query import (
    MAX_POINTS,
    OPERATORS,
    PAGE,
    Query,
    QueryError,
    page,
    query_ring,
)
from epics_collector.storage._query import run as run_query
from epics_collector.storage._reads import (
    CHUNK,
    OverwrittenError,
    RangeRead,
    ReadError,
    StaleReadError,
)
from epics_collector.storage._retention import Channel as RetentionChannel
from epics_collector.storage._retention import Engine as RetentionEngine
from epics_collector.storage._retention import Pacing as RetentionPacing
from epics_collector.storage._retention import Run as RetentionRun
from epics_collector.storage._retention import Step as RetentionStep
from epics_collector.storage._retention import StoppedError as RetentionStoppedError
from epics_collector.storage._retention import due as retention_due
from epics_collector.storage._retention import next_due as retention_next
from epics_collector.storage._retention import step_columns as retention_columns
from epics_collector.storage._ring import Columns, Ring, concat
from epics_collector.storage._spanning import OnDisk, Spanning
from epics_collector.storage._spill import (
    ChunksGoneError,
    ReadOnly,
    SpillStore,
    StoreClosedError,
    StoreUnavailableError,
    array_record,
    read_only,
    text_rows,
    write_json_atomic,
)
from epics_collector.storage._stored import (
    DESCRIPTION,
    KINDS,
    SPILL,
    ChannelSummary,
    StoredRecording,
    Summary,
    describe,
    description,
    disk_bytes,
    summarise,
)

__all__ = [
    "Boundary",
    "boundary_of",
    "OlderRows",
    "OnDisk",
    "Spanning",
    "byte_count",
    "Duration",
    "RetentionChannel",
    "RetentionEngine",
    "RetentionPacing",
    "RetentionStoppedError",
    "RetentionRule",
    "RetentionSettings",
    "RetentionRun",
    "RetentionStep",
    "retention_due",
    "retention_next",
    "retention_columns",
    "rule_for",
    "seconds",
    "Size",
    "array_record",
    "ChannelData",
    "CHUNK",
    "Columns",
    "concat",
    "confined_path",
    "existing_inside",
    "ExportData",
    "MAX_POINTS",
    "names_inside",
    "new_file",
    "open_inside",
    "OverwrittenError",
    "page",
    "query_ring",
    "ReadOnly",
    "DESCRIPTION",
    "KINDS",
    "SPILL",
    "ChannelSummary",
    "StoredRecording",
    "Summary",
    "describe",
    "DirectoryBusyError",
    "DirectoryLock",
    "description",
    "disk_bytes",
    "summarise",
    "OPERATORS",
    "PAGE",
    "PathError",
    "Query",
    "QueryError",
    "RangeRead",
    "read_only",
    "ReadError",
    "Ring",
    "run_query",
    "SnapshotData",
    "SpillStore",
    "ChunksGoneError",
    "StoreClosedError",
    "StaleReadError",
    "StoreUnavailableError",
    "text_rows",
    "write_csv",
    "write_json_atomic",
    "write_nexus",
]
