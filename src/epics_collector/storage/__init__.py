"""Storage of recorded data: in-memory rings, crash-safe spill files, exports."""

from epics_collector.storage._export import (
    ChannelData,
    ExportData,
    SnapshotData,
    write_csv,
    write_nexus,
)
from epics_collector.storage._lock import DirectoryBusyError, DirectoryLock
from epics_collector.storage._paths import (
    PathError,
    confined_path,
    existing_inside,
    names_inside,
    new_file,
    open_inside,
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
from epics_collector.storage._ring import Columns, Ring, concat
from epics_collector.storage._spill import (
    ReadOnly,
    SpillStore,
    StoreUnavailableError,
    array_record,
    read_only,
    text_rows,
    write_json_atomic,
)
from epics_collector.storage._stored import (
    DESCRIPTION,
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
    "StaleReadError",
    "StoreUnavailableError",
    "text_rows",
    "write_csv",
    "write_json_atomic",
    "write_nexus",
]
