"""A device in its own process: ``python -m epics_collector run TYPE --prefix P ...``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from epics_collector.process._managed import ReadyProcess

READY_LINE = "device ready:"
FACTORY_READY_LINE = "factory ready:"
MODULE = "epics_collector"


def device_arguments(
    type_name: str,
    prefix: str,
    config: Mapping[str, Any] | None = None,
    *,
    data_dir: Path | None = None,
    parent_pid: int | None = None,
) -> list[str]:
    """Arguments of ``python -m epics_collector`` that run one device.

    With ``parent_pid`` the device exits when that process dies (see
    :func:`~epics_collector.process.exit_with_parent`), so a supervisor killed with
    SIGKILL leaves no orphans that would hold the device's PV names.
    """
    args = ["run", type_name, "--prefix", prefix, "--config", json.dumps(config or {})]
    if data_dir is not None:
        args += ["--data-dir", str(data_dir)]
    if parent_pid is not None:
        args += ["--parent-pid", str(parent_pid)]
    return args


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
        args = device_arguments(type_name, prefix, config, data_dir=data_dir)
        super().__init__(MODULE, args, READY_LINE, env=env, timeout=timeout)


class FactoryProcess(ReadyProcess):
    """Runs ``epics-collector factory`` (or ``serve FILE``) as a child process."""

    def __init__(
        self,
        prefix: str,
        *,
        data_dir: Path,
        state_dir: Path | None = None,
        config: Path | None = None,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        launcher: Sequence[str] = (),
        fresh: bool = False,
    ) -> None:
        self.prefix = prefix
        args = ["factory", "--prefix", prefix, "--data-dir", str(data_dir)]
        if fresh:
            args.append("--fresh")
        if state_dir is not None:
            args += ["--state-dir", str(state_dir)]
        if config is not None:
            args += ["--config", str(config)]
        super().__init__(
            MODULE, args, FACTORY_READY_LINE, env=env, timeout=timeout, launcher=launcher
        )
