"""Uploading with retries: attempts, back-off and the record left next to the file."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from epics_collector.upload._base import Uploader


class UploadFailedError(RuntimeError):
    """Every attempt failed; the text says how many and the last error."""


async def upload_with_retries(
    uploader: Uploader,
    path: Path,
    metadata: dict[str, Any],
    status: Callable[[str], None],
    record: Callable[[Path, dict[str, Any]], None],
) -> str:
    """Upload ``path`` (in an executor), retrying with doubling waits; its location.

    ``status`` is told each attempt; ``record(path, data)`` writes the upload's record
    (location, time, kind) once it succeeded. Raises :class:`UploadFailedError`.
    """
    attempts, wait = uploader.settings.retries + 1, uploader.settings.backoff
    loop = asyncio.get_running_loop()
    failure = ""
    for attempt in range(1, attempts + 1):
        status(f"uploading {path.name} (attempt {attempt}/{attempts})")
        try:
            location = await loop.run_in_executor(None, uploader.upload, path, metadata)
        except Exception as error:  # any failure is retried, then reported
            failure = f"{type(error).__name__}: {error}"
            if attempt < attempts:
                await asyncio.sleep(wait)
                wait *= 2
            continue
        data = {"location": location, "time": time.time(), "kind": uploader.settings.kind}
        record(path.with_name(path.name + ".upload.json"), data)
        return location
    raise UploadFailedError(f"upload of {path.name} failed after {attempts} attempts: {failure}")
