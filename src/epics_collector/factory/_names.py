"""A factory's PV names: each named once, here, for the server and its clients."""

from __future__ import annotations

from enum import StrEnum


class FactoryPv(StrEnum):
    """A factory's own PVs after its prefix (besides :class:`DevicePv`'s)."""

    DEVICES = "Devices"
    TYPES = "Types"
    RECORDINGS = "Recordings"
    RECORDED_CHANNELS = "RecordedChannels"
    QUERY_BUSY = "QueryBusy"
    CREATE_NEW = "CreateNew"
    CREATE = "Create"
    DESTROY = "Destroy"
    RESTART = "Restart"
    QUERY = "Query"
    PURGE = "Purge"
    RETENTION_DRY_RUN = "RetentionDryRun"
    RETENTION_APPLY = "RetentionApply"
    RETENTION_REDUCED = "RetentionReduced"
    RETENTION_DELETED = "RetentionDeleted"
    RECORDING_BYTES = "RecordingBytes"
    NEW_TYPE = "NewType"
    NEW_NAME = "NewName"
    NEW_CONFIG = "NewConfig"
