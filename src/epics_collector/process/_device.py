"""A device in its own process: ``python -m epics_collector run TYPE --prefix P ...``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from epics_collector.process._managed import ReadyProcess

READY_LINE = "device ready:"


class DeviceProcess(ReadyProcess):
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
        args = ["run", type_name, "--prefix", prefix, "--config", json.dumps(config or {})]
        if data_dir is not None:
            args += ["--data-dir", str(data_dir)]
        super().__init__("epics_collector", args, READY_LINE, env=env, timeout=timeout)
