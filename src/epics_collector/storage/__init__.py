"""Storage of recorded data: in-memory rings, crash-safe spill files, exports."""

from epics_collector.storage._export import (
    ChannelData,
    ExportData,
    SnapshotData,
    write_csv,
    write_nexus,
)
from epics_collector.storage._paths import (
    PathError,
    confined_path,
    existing_inside,
    names_inside,
    new_file,
    open_inside,
)
from epics_collector.storage._query import MAX_POINTS, OPERATORS, PAGE, Query, QueryError, page
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
    SpillStore,
    StoreUnavailableError,
    array_record,
    read_only,
    text_rows,
    write_json_atomic,
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
