"""A processing device's PV names: each named once, here, for the server and its clients."""

from __future__ import annotations

from enum import StrEnum

#: Before a parameter's name: ``P:Param:gain``.
PARAM = "Param:"


class ProcessingPv(StrEnum):
    """A processing device's own PVs after its prefix (besides :class:`DevicePv`'s)."""

    ENABLE = "Enable"
    FEEDBACK_ENABLE = "FeedbackEnable"
    FEEDBACK_SKIPPED = "FeedbackSkipped"
    COUNT = "Count"
    ERRORS = "Errors"
    SKIPPED = "Skipped"
    OVERRUNS = "Overruns"
    DURATION = "Duration"
    DURATION_MAX = "DurationMax"
    WORKER_RESTARTS = "WorkerRestarts"
    RESET = "Reset"
