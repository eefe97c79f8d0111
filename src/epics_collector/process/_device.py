"""A device in its own process: ``python -m epics_collector run TYPE --prefix P ...``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from epics_collector.process._managed import ManagedProcess

READY_LINE = "device ready:"


class DeviceProcess:
    """Runs one device as a child process; ready when the device says its PVs are served."""

    def __init__(
        self,
        type_name: str,
        prefix: str,
        config: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        data_dir: Path | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.prefix = prefix
        self.timeout = timeout
        args = ["run", type_name, "--prefix", prefix, "--config", json.dumps(config or {})]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        self.process = ManagedProcess("epics_collector", args, env=env)

    def start(self) -> DeviceProcess:
        """Start the process and wait until the device serves its PVs."""
        self.process.start()
        self.process.wait_ready(lambda: READY_LINE in self.process.output(), self.timeout)
        return self

    def stop(self) -> int:
        """Stop the process (SIGTERM, then kill); return its exit code."""
        return self.process.stop()

    def __enter__(self) -> DeviceProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
