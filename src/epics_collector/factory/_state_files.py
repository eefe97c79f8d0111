"""The files a factory keeps in its state directory, made like the data directory's.

Every file under ``STATE_DIR`` (``pids/``, ``logs/``, ``configs/``) is opened under
directory file descriptors with ``O_NOFOLLOW``: a folder or file swapped for a symbolic
link is refused, never written through (a long config no longer truncates a link's
target; a device log is never appended to another file).

Pid files let a factory started after a crash stop the device processes its earlier
instance left running. A pid file is trusted only if it is a regular file owned by the
factory's user with mode 0600, and a process is killed only if it still has the start
time written with its pid and its full command line is exactly the one written, which
must be this factory's device command for that device name (``python -m epics_collector
run TYPE --prefix PREFIX ...`` of the stored device). A planted file, or one naming any
other process (an operator's own ``epics-collector run``, an unrelated tool), is left
alone and reported.

One factory at a time owns a state directory: :class:`StateDirLock` holds an exclusive
``flock`` on ``STATE_DIR/lock`` for the factory's life, so a second factory started on
the same directory refuses before it reads a pid file (it would otherwise take the
first one's live devices for leftovers).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import stat
import sys
from pathlib import Path
from typing import IO

from epics_collector.process import MODULE, ExitWatch
from epics_collector.storage import (
    DirectoryBusyError,
    DirectoryLock,
    PathError,
    names_inside,
    new_file,
    open_inside,
)

log = logging.getLogger(__name__)
LOG_LIMIT = 10 * 1024 * 1024  # a device log is rotated (once, to .1) past this size


def _start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot); None if it is gone.

    A zombie (dead, not yet reaped by its parent) counts as gone.
    """
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[19])  # state is field 3, start 22


def _command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def _made(state_dir: Path) -> Path:
    """The state directory, made if missing (the folders below it are made without links)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    return state_dir


class StateDirBusyError(RuntimeError):
    """Another factory holds the state directory."""


class StateDirLock:
    """An exclusive lock on ``STATE_DIR/lock`` (released when the process ends, too)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._lock = DirectoryLock(state_dir)

    def acquire(self) -> None:
        """Take the lock or raise :class:`StateDirBusyError` naming the holder's pid."""
        try:
            self._lock.acquire()
        except DirectoryBusyError as error:
            raise StateDirBusyError(
                f"state dir {self.state_dir} is in use by another factory (pid {error.holder}: "
                "this factory's earlier instance, if it was started on the same state dir); "
                "stop it first, or give this one its own --data-dir/--state-dir"
            ) from None

    def release(self) -> None:
        """Let the next factory have the directory."""
        self._lock.release()


def device_command(type_name: str, prefix: str) -> list[str]:
    """How every device command of this factory for ``prefix`` begins."""
    return [sys.executable, "-m", MODULE, "run", type_name, "--prefix", prefix]


class PidFile:
    """``STATE_DIR/pids/<name>.json``: the pid, start time and command of a device process."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.state_dir, self.name = state_dir, name
        self.relative = f"pids/{name}.json"
        self.path = state_dir / self.relative
        #: Why the last :meth:`stop_leftover` left the file's process alone, if it did.
        self.refusal: str | None = None

    def write(self, pid: int, command: list[str]) -> None:
        """Record a child just started (mode 0600; a reader sees the old file or the new)."""
        data = {"pid": pid, "start": _start_time(pid), "command": command}
        root = _made(self.state_dir)
        with new_file(self.path, root, mode=0o600) as handle, open(handle, "w") as f:
            json.dump(data, f)

    def clear(self) -> None:
        """The child is stopped: forget it."""
        self.path.unlink(missing_ok=True)  # a link in its place: the link goes

    def read(self) -> dict[str, object] | None:
        """The recorded child, or None: no file, or one that is not to be trusted."""
        try:
            fd = open_inside(self.state_dir, self.relative, os.O_RDONLY)
        except PathError as error:
            if self.path.exists() or self.path.is_symlink():
                log.warning("pid file %s refused: %s", self.path, error)
            return None
        with os.fdopen(fd) as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
                log.warning("pid file %s refused: not a file of this user", self.path)
                return None
            if info.st_mode & 0o077:
                log.warning(
                    "pid file %s refused: others may write it (mode %o)",
                    self.path,
                    info.st_mode & 0o777,
                )
                return None
            try:
                data = json.load(file)
            except ValueError:
                return None
        return data if isinstance(data, dict) else None

    def _refuse(self, why: str) -> None:
        self.refusal = f"pid file {self.relative} not trusted ({why}): its process left alone"
        log.warning("%s", self.refusal)

    def stop_leftover(self, expected: list[str], timeout: float = 5.0) -> int | None:
        """Kill the recorded child if it is exactly a device this factory launched.

        ``expected``: how its command must begin (:func:`device_command` of the stored
        device of this name). Returns the pid killed, else None (the file is removed).
        """
        recorded = self.read()
        self.clear()
        if recorded is None:
            return None
        pid, start, command = recorded.get("pid"), recorded.get("start"), recorded.get("command")
        if not isinstance(pid, int) or not isinstance(command, list) or pid <= 1:
            return None
        if command[: len(expected)] != expected or "--parent-pid" not in command:
            self._refuse("it names no device command of this factory")
            return None
        with ExitWatch(pid) as process:  # opened first: the checks below are of this one
            if _start_time(pid) != start or _command_line(pid) != command:
                return None  # gone, or the pid now belongs to another process
            log.warning(
                "stopping device %s left running by an earlier instance (pid %d)", self.name, pid
            )
            process.send(signal.SIGKILL)
            if not process.wait(timeout):
                log.error(
                    "device %s (pid %d) still runs %g s after SIGKILL", self.name, pid, timeout
                )
        return pid


def pid_file_names(state_dir: Path) -> list[str]:
    """Device names with a pid file (links and other files left out)."""
    try:
        names = names_inside(_made(state_dir), "pids")
    except PathError as error:
        log.warning("pid files not read: %s", error)
        return []
    return [n.removesuffix(".json") for n in names if n.endswith(".json")]


def open_log(state_dir: Path, name: str) -> IO[bytes]:
    """``STATE_DIR/logs/<name>.log`` to append a device's output to (rotated once)."""
    relative = f"logs/{name}.log"
    fd = open_inside(_made(state_dir), relative, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    if os.fstat(fd).st_size > LOG_LIMIT:
        os.close(fd)
        folder = open_inside(state_dir, "logs", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.rename(f"{name}.log", f"{name}.log.1", src_dir_fd=folder, dst_dir_fd=folder)
        finally:
            os.close(folder)
        fd = open_inside(state_dir, relative, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    return os.fdopen(fd, "a+b")


def write_config(state_dir: Path, path: Path, text: str) -> None:
    """A device's long configuration file, 0600, written atomically without links."""
    with new_file(path, _made(state_dir), mode=0o600) as handle, open(handle, "w") as file:
        file.write(text)
