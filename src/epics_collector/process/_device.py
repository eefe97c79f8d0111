"""A device in its own process: ``python -m epics_collector run TYPE --prefix P ...``."""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from epics_collector.process._managed import ReadyProcess

INLINE_CONFIG_CHARS = 32_000  # longer configurations go through a file
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
    config_file: Path | None = None,
    write: Callable[[Path, str], None] | None = None,
) -> list[str]:
    """Arguments of ``python -m epics_collector`` that run one device.

    A configuration longer than :data:`INLINE_CONFIG_CHARS` is written to ``config_file``
    (a ``.json`` path the caller owns) and passed by name: one command-line word holds at
    most 128 KiB on Linux, a 10,000-channel collector's configuration more. With
    ``parent_pid`` the device exits when that process dies (see
    :func:`~epics_collector.process.exit_with_parent`), so a supervisor killed with
    SIGKILL leaves no orphans that would hold the device's PV names. ``write(path,
    text)`` writes the file (default: created 0600 here; a factory passes one that
    follows no link in its state directory).
    """
    text = json.dumps(config or {})
    if len(text) > INLINE_CONFIG_CHARS:
        if config_file is None or config_file.suffix != ".json":
            raise ValueError(f"a configuration of {len(text)} characters needs a .json file")
        if write is not None:
            write(config_file, text)
        else:
            config_file.parent.mkdir(parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            with os.fdopen(os.open(config_file, flags, 0o600), "w") as file:
                file.write(text)
        text = str(config_file)
    args = ["run", type_name, "--prefix", prefix, "--config", text]
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
        # written only for a long configuration, removed on stop
        self._config_file = Path(tempfile.gettempdir()) / f"epics-collector-{uuid.uuid4()}.json"
        args = device_arguments(
            type_name, prefix, config, data_dir=data_dir, config_file=self._config_file
        )
        super().__init__(MODULE, args, READY_LINE, env=env, timeout=timeout)

    def stop(self) -> int:
        """Stop the device and remove its configuration file, if it needed one."""
        try:
            return super().stop()
        finally:
            self._config_file.unlink(missing_ok=True)


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
