"""A collector's PV names: each named once, here, for the server and its clients."""

from __future__ import annotations

from enum import StrEnum


class CollectorPv(StrEnum):
    """A collector's own PVs after its prefix (besides :class:`DevicePv`'s)."""

    COUNT = "Count"
    DROPPED = "Dropped"
    OVERRUNS = "Overruns"
    EXCLUDED = "Excluded"
    CHANNELS = "Channels"
    SNAPSHOTS = "Snapshots"
    START = "Start"
    STOP = "Stop"
    CLEAR = "Clear"
    TRIGGER = "Trigger"
    STORE_DAMAGE = "StoreDamage"
    ACK_DAMAGE = "AckDamage"
    EXPORT = "Export"
    EXPORT_PATH = "ExportPath"
    EXPORT_ROWS = "ExportRows"
    EXPORT_FORMAT = "ExportFormat"
    UPLOAD_STATUS = "UploadStatus"
    UPLOAD = "Upload"
    QUERY_BUSY = "QueryBusy"
    QUERY = "Query"
    PUSH = "Push"
    ADD = "Add"
    REMOVE = "Remove"
    REMOVED = "Removed"
    PURGE = "Purge"
    ANNOTATE = "Annotate"
    ANNOTATIONS = "Annotations"
    RETENTION = "Retention"
    RETENTION_REDUCED = "RetentionReduced"
    RETENTION_DELETED = "RetentionDeleted"
    RETENTION_APPLY = "RetentionApply"


class ChannelPv(StrEnum):
    """A channel's PV suffixes, after ``<alias>:``."""

    VALUE = "Value"
    FRAME = "Frame"
    FRAME_INDEX = "FrameIndex"
    TIME = "Time"
    TABLE = "Table"
    TAIL = "Tail"
    CONNECTED = "Connected"
    VIEW = "View"  # the view's PVs are ``<alias>:View:<ViewPv>``


class ViewPv(StrEnum):
    """A number channel's view PV suffixes, after ``<alias>:View:``."""

    START = "Start"
    END = "End"
    POINTS = "Points"
    OPERATOR = "Operator"
    TIME = "Time"
    VALUE = "Value"
    MIN = "Min"
    MAX = "Max"


def channel_pv(alias: str, suffix: ChannelPv) -> str:
    """A channel's PV name under the collector's prefix: ``<alias>:<suffix>``."""
    return f"{alias}:{suffix}"


def view_pv(alias: str, suffix: ViewPv) -> str:
    """A view PV's name under the collector's prefix: ``<alias>:View:<suffix>``."""
    return f"{alias}:{ChannelPv.VIEW}:{suffix}"
