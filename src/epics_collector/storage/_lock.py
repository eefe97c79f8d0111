"""One process at a time on a directory: an exclusive ``flock`` on a file inside it.

The lock is the kernel's: it goes with the process (a crash or kill -9 releases it),
and a second process that asks for it is refused at once with the holder's pid.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from epics_collector.storage._paths import open_inside


class DirectoryBusyError(RuntimeError):
    """Another process holds the directory's lock; ``holder`` is its pid (text)."""

    def __init__(self, directory: Path, holder: str) -> None:
        super().__init__(f"{directory} is in use by another process (pid {holder})")
        self.directory, self.holder = directory, holder


class DirectoryLock:
    """An exclusive lock on ``directory/name``, held until :meth:`release` or the exit."""

    def __init__(self, directory: Path, name: str = "lock") -> None:
        self.directory, self.name = directory, name
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock (the directory is made if missing) or raise DirectoryBusyError."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = open_inside(self.directory, self.name, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DirectoryBusyError(self.directory, holder) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Let the next process have the directory."""
        if self._fd is not None:
            os.close(self._fd)  # closing the only descriptor drops the flock
            self._fd = None
