"""What the management API says of a PV, in the Archiver Appliance's words.

Built from what the :class:`~._archive.Archive` last read: the collectors' ``Channels``
tables (connection, counts, reason), their States, and the source's metadata. The
field names, the status strings and the time formats are the appliance's
(``config/PVTypeInfo.java``, ``mgmt/bpl/GetPVStatusAction.java``,
``engine/epics/EngineChannelStatus.java``, ``common/TimeUtils.java``): every scalar is
a string, as its JSON encoder writes them.

A PV is *archived* while a collector has a channel of it (live), *paused* while none
of those collectors records, and no longer archived when only retired recordings hold
it: their rows are still served, and its type info says ``DONT_ARCHIVE``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from epics_collector.retrieval._archive import Archive, ChannelState, Recording, payload_type
from epics_collector.retrieval._pb import PayloadType

NEVER = "Never"
#: PVTypeInfo's limit fields, from the source's record-field names (see pva.LIMITS)
LIMIT_FIELDS = {
    "lowerAlarmLimit": "LOLO",
    "lowerWarningLimit": "LOW",
    "upperWarningLimit": "HIGH",
    "upperAlarmLimit": "HIHI",
    "lowerDisplayLimit": "LOPR",
    "upperDisplayLimit": "HOPR",
    "lowerCtrlLimit": "DRVL",
    "upperCtrlLimit": "DRVH",
}


def human(seconds: float) -> str:
    """``TimeUtils.convertToHumanReadableString``: ``Dec/07/2026 18:30:00 UTC``, or Never."""
    if not math.isfinite(seconds) or int(seconds) == 0:
        return NEVER
    return time.strftime("%b/%d/%Y %H:%M:%S %Z", time.localtime(int(seconds)))


def iso_millis(seconds: float) -> str:
    """``TimeUtils.convertToISO8601String``: ``2026-12-07T18:30:00.123Z`` (UTC)."""
    whole = math.floor(seconds)
    millis = min(999, int(round((seconds - whole) * 1000)))
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def java_double(value: Any) -> str:
    """A number as Java's ``Double.toString`` writes it (``10.0``, ``NaN``, ``Infinity``)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return "NaN"
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return repr(number)


def _scan(state: ChannelState | None) -> tuple[str, float]:
    """(samplingMethod, samplingPeriod): SCAN for a periodic compress, else MONITOR."""
    if state is not None and math.isfinite(state.period):
        return "SCAN", state.period
    return "MONITOR", 0.0


class PvInfo:
    """The management API's view of one PV of ``archive`` (as last read)."""

    def __init__(self, archive: Archive, pv: str) -> None:
        self.archive, self.pv = archive, pv
        self.recordings: list[Recording] = archive.recordings.get(pv, [])
        self.live = [r for r in self.recordings if not r.recording and not r.removed]
        #: channels removed as a pause: still archived, paused
        self.held = [r for r in self.recordings if r.removed and r.paused]

    @property
    def known(self) -> bool:
        """Whether any recording (live or retired) holds the PV."""
        return bool(self.recordings)

    @property
    def archived(self) -> bool:
        """Whether a collector has a channel of it now (recording or not, or paused)."""
        return bool(self.live or self.held)

    @property
    def recording(self) -> list[Recording]:
        """Its live channels whose collector records now."""
        return [r for r in self.live if self.archive.states.get(r.collector) == "Recording"]

    @property
    def paused(self) -> bool:
        """Archived, but none of its collectors records."""
        return self.archived and not self.recording

    @property
    def down(self) -> bool:
        """Every collector of its live channels fails to answer now."""
        return bool(self.live) and all(r.collector in self.archive.problems for r in self.live)

    def state(self, recording: Recording) -> ChannelState | None:
        return self.archive.channels.get((recording.collector, recording.alias))

    @property
    def main(self) -> Recording:
        """The recording whose channel the answers describe: recording, live, retired."""
        return (self.recording or self.live or self.held or self.recordings)[0]

    @property
    def appliance(self) -> str:
        """The collectors of its live channels (else the factories of its retirements)."""
        own = self.live or self.held or self.recordings
        return ",".join(dict.fromkeys(r.collector for r in own))

    @property
    def created(self) -> float:
        """When its first live channel was made (POSIX s; now if not said)."""
        added = [s.added for r in self.live if (s := self.state(r)) is not None]
        known = [a for a in added if math.isfinite(a)]
        return min(known) if known else time.time()

    def payload(self) -> PayloadType | None:
        """The PB type of its rows (None for images: the API does not serve them)."""
        kind = self.main.kind
        if kind == "image":
            return None
        _, native = self.archive.metadata(self.pv)
        return payload_type(kind, np.zeros(0), native)

    def type_info(self) -> dict[str, Any]:
        """``PVTypeInfo`` as the appliance's JSON encoder writes it (scalars as strings)."""
        headers, _ = self.archive.metadata(self.pv)
        payload = self.payload()
        dbr = "DBR_V4_GENERIC_BYTES" if payload is None else f"DBR_{payload.name}"
        state = self.state(self.main) if self.archived else None
        method, period = _scan(state) if self.archived else ("DONT_ARCHIVE", 0.0)
        created = self.created
        source = self.main.source
        info: dict[str, Any] = {
            "pvName": self.pv,
            "DBRType": dbr,
            "scalar": str(payload is not None and payload.name.startswith("SCALAR")).lower(),
            "elementCount": str(self.archive.elements(self.pv) or 1),
            "applianceIdentity": self.appliance,
            "units": headers.get("EGU", ""),
            "precision": java_double(headers.get("PREC", 0)),
            "samplingMethod": method,
            "samplingPeriod": java_double(period),
            "paused": str(self.paused).lower(),
            "creationTime": iso_millis(created),
            "modificationTime": iso_millis(created),
            "hasReducedDataSet": "false",
            "usePVAccess": str(not source.startswith("ca://")).lower(),
            "useDBEProperties": "false",
            "archiveFields": [],
            "extraFields": {},
        }
        for name, field in LIMIT_FIELDS.items():
            info[name] = java_double(headers.get(field, "NaN"))
        return info

    def status(self) -> dict[str, str]:
        """``getPVStatus``'s entry: the engine's fields while a collector records it."""
        if not self.archived:
            return {"pvName": self.pv, "status": "Not being archived"}
        if self.down:
            return {"pvName": self.pv, "status": "Appliance Down"}
        named = {"appliance": self.appliance, "pvName": self.pv, "pvNameOnly": self.pv}
        if self.paused:
            return {**named, "status": "Paused"}
        state = self.state(self.main)
        if state is None:
            return {**named, "status": "Appliance assigned"}
        method, period = _scan(state)
        return {
            "pvName": self.pv,
            "status": "Being archived",
            "isMonitored": str(method == "MONITOR").lower(),
            "samplingPeriod": java_double(period),
            "connectionState": str(state.connected).lower(),
            "lastEvent": human(state.last_update),
            "lastRotateLogs": NEVER,
            "connectionFirstEstablished": human(state.since) if state.connects == 1 else NEVER,
            "connectionLastRestablished": human(state.since) if state.connects > 1 else NEVER,
            "connectionLossRegainCount": str(max(0, state.connects - 1)),
            "appliance": self.appliance,
            "pvNameOnly": self.pv,
            "reason": state.reason,
        }

    def details(self) -> list[dict[str, str]]:
        """``getPVDetails``: name/value/source rows, one set per channel of the PV."""
        rows = [
            {"name": "PV Name", "value": self.pv, "source": "mgmt"},
            {"name": "Status", "value": self.status()["status"], "source": "mgmt"},
        ]
        info = self.type_info()
        for key in ("DBRType", "elementCount", "units", "samplingMethod", "samplingPeriod"):
            rows.append({"name": key, "value": str(info[key]), "source": "typeinfo"})
        for recording in self.recordings:
            where = recording.recording or recording.collector
            rows.append({"name": "Recorded by", "value": where, "source": "collector"})
            rows.append({"name": "Channel", "value": recording.alias, "source": where})
            state = (
                self.state(recording) if not (recording.recording or recording.removed) else None
            )
            if state is None:
                continue
            for name, value in (
                ("Is connected", str(state.connected).lower()),
                ("Connection state", state.reason),
                ("Last connection change", human(state.since)),
                ("Times connected", str(state.connects)),
                ("Rows since Clear", str(state.count)),
                ("Last event", human(state.last_update)),
                ("Added", human(state.added)),
            ):
                rows.append({"name": name, "value": value, "source": where})
        return rows


def channels(archive: Archive) -> Iterator[tuple[str, Recording, ChannelState]]:
    """Every live channel with a source, and its state: (pv, recording, state)."""
    for pv, found in archive.recordings.items():
        for recording in found:
            if recording.recording or recording.removed or not _has_source(recording):
                continue
            state = archive.channels.get((recording.collector, recording.alias))
            if state is not None:
                yield pv, recording, state


def _has_source(recording: Recording) -> bool:
    return not recording.source.startswith(("push:", "merge:")) and bool(recording.source)


def never_connected(archive: Archive) -> list[dict[str, str]]:
    """``getNeverConnectedPVs``: channels whose source never connected, with the reason."""
    return [
        {
            "pvName": pv,
            "requestTime": human(state.added),
            "startOfWorkflow": human(state.added),
            "currentState": state.reason or "connecting",
            "appliance": recording.collector,
        }
        for pv, recording, state in channels(archive)
        if state.connects == 0
    ]


def disconnected(archive: Archive) -> list[dict[str, str]]:
    """``getCurrentlyDisconnectedPVs``: recording channels that lost their source."""
    found = []
    for pv, recording, state in channels(archive):
        recording_now = archive.states.get(recording.collector) == "Recording"
        if state.connected or state.connects == 0 or not recording_now:
            continue  # (connected, never connected, or paused: the appliance skips those)
        found.append(
            {
                "pvName": pv,
                "instance": recording.collector,
                "lastKnownEvent": human(state.last_update),
                "connectionLostAt": human(state.since),
                "noConnectionAsOfEpochSecs": str(int(state.since)),
                "hostName": "N/A",
                "commandThreadID": "0",
                "reason": state.reason,
            }
        )
    return found


def paused(archive: Archive) -> list[dict[str, str]]:
    """``getPausedPVsReport``: archived PVs none of whose collectors records now."""
    found = []
    for pv in archive.names():
        info = PvInfo(archive, pv)
        if info.paused:
            found.append(
                {
                    "pvName": pv,
                    "instance": info.appliance,
                    "modificationTime": human(info.created),
                }
            )
    return found
