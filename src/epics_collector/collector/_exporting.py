"""A collector's exports (Export, ExportFormat, Upload) and what they write.

:class:`Exporting` is the collector's part that owns them. An export is gathered on the
loop as readers, not copies, and written from the executor channel by channel
(:func:`gather`), so the loop keeps serving PVs and peak memory is one channel's rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path

from epics_collector.collector._config import CollectorConfig
from epics_collector.collector._history import History
from epics_collector.collector._names import CollectorPv
from epics_collector.collector._recorder import Channel
from epics_collector.collector._triggers import TriggerWindows
from epics_collector.core import AttrR, AttrRW, Enum, Int, Part, Severity, Status, String, command
from epics_collector.storage import (
    ChannelData,
    Columns,
    ExportData,
    SnapshotData,
    confined_path,
    write_csv,
    write_json_atomic,
    write_nexus,
)
from epics_collector.upload import UploadFailedError, make_uploader, upload_with_retries

NEXUS_SUFFIXES = (".nxs", ".h5", ".hdf5", ".nx5")  # kept; other names get .nxs
Report = Callable[[str, Severity], None]


def gather(
    device: str,
    config_json: str,
    history: History,
    triggers: TriggerWindows | None,
    annotations: list[tuple[float, str]],
) -> ExportData:
    """What an export writes: each channel's rows as a reader, called by the writer.

    Nothing is copied here (on the event loop): the writer, in its thread, reads one
    channel at a time (chunk by chunk under the recorder's lock) and lets it go before
    the next, so an export holds one channel's copy, not the whole history's.
    """
    found = {c.alias: c for c in history.channels}

    def describe(
        alias: str, rows: Columns | Callable[[], Columns], span: tuple[float, float] | None = None
    ) -> ChannelData:
        channel = found[alias]
        config = channel.config
        return ChannelData(alias, config.pv, channel.kind, rows, config.units, span)

    channels = [
        describe(c.alias, functools.partial(history.rows, c), _span(history, c))
        for c in history.channels
    ]
    snapshots = [
        SnapshotData(
            s.id,
            s.trigger_time,
            s.start,
            s.end,
            s.complete,
            [describe(alias, rows) for alias, rows in s.rows.items() if alias in found],
        )
        for s in (triggers.snapshots if triggers is not None else [])
    ]
    return ExportData(device, config_json, channels, snapshots, list(annotations))


def _span(history: History, channel: Channel) -> tuple[float, float] | None:
    first, last = history.span(channel)
    return (first, last) if last > 0 else None  # (0, 0): no rows


class Exporting(Part):
    """Writes the history into a file of the data directory, and uploads the last one."""

    export_name = AttrRW(
        String(max_length=255),
        name=CollectorPv.EXPORT,
        description=(
            "Put a file name: writes the history into the data directory; answered once "
            "the file is complete"
        ),
    )
    export_path = AttrR(
        String(), name=CollectorPv.EXPORT_PATH, description="The path of the last file written"
    )
    export_rows = AttrR(
        Int(),
        name=CollectorPv.EXPORT_ROWS,
        description=(
            "Rows in the last file written (0: written, with a MINOR Message: nothing recorded)"
        ),
    )
    export_format = AttrRW(
        Enum(choices=["nexus", "csv"]),
        name=CollectorPv.EXPORT_FORMAT,
        description="Format of Export: nexus or csv",
    )
    upload_status = AttrR(
        String(),
        name=CollectorPv.UPLOAD_STATUS,
        description="Last upload: where it went, or why not",
    )

    def __init__(
        self,
        config: CollectorConfig,
        data_dir: Path,
        prefix: Callable[[], str],
        what: Callable[[], ExportData],
        report: Report,
    ) -> None:
        """Export what ``what()`` gathers (on the loop: readers, not copies).

        ``prefix()`` is the device's, named in an upload's metadata.
        """
        self.config, self.data_dir, self._report = config, data_dir, report
        self._prefix, self._what = prefix, what
        self._upload_task: asyncio.Task[None] | None = None
        self.export_format.set(config.export.format)

    @export_name.on_put
    async def _export(self, name: str) -> None:
        nexus = self.export_format.value == "nexus"
        if nexus:
            suffix = "" if name.lower().endswith(NEXUS_SUFFIXES) else ".nxs"
        else:
            suffix = ".csv"
        path = confined_path(
            self.data_dir, name, suffix=suffix, overwrite=self.config.export.overwrite
        )
        writer = write_nexus if nexus else write_csv
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(None, writer, path, self._what(), self.data_dir)
        self.export_rows.set(rows)
        self.export_path.set(str(path))
        took = f"in {time.monotonic() - started:.2f} s"
        if rows == 0:
            self._report(f"exported 0 rows to {path.name} {took}: nothing recorded", Severity.MINOR)
        else:
            self._report(f"exported {rows} rows to {path.name} {took}", Severity.NO_ALARM)

    @command(name=CollectorPv.UPLOAD)
    async def upload_export(self) -> None:
        """Upload the last export to the configured data-management system (background)."""
        if self.config.upload is None:
            raise ValueError("no upload configured: add upload: {kind: ..., ...}")
        if not self.export_path.value:
            raise ValueError("nothing exported yet: put a file name to Export first")
        if self._upload_task is not None and not self._upload_task.done():
            raise ValueError("an upload is already running")
        path = Path(self.export_path.value)
        self._upload_task = asyncio.create_task(self._upload(path), name="upload")

    async def _upload(self, path: Path) -> None:
        assert self.config.upload is not None
        uploader = make_uploader(self.config.upload)
        metadata = {"device": self._prefix(), "file": path.name, "exported": path.stat().st_mtime}
        try:
            location = await upload_with_retries(
                uploader, path, metadata, self.upload_status.set, write_json_atomic
            )
        except UploadFailedError as error:
            text = str(error)
            self.upload_status.set(
                text, severity=Severity.MAJOR, status=Status.DEVICE, message=text
            )
            self._report(text, Severity.MAJOR)
            return
        self.upload_status.set(f"uploaded {path.name} to {location}")
        self._report(f"uploaded {path.name} to {location}", Severity.NO_ALARM)

    async def close(self) -> None:
        """Cancel a running upload (the device stops)."""
        if self._upload_task is not None:
            self._upload_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upload_task
