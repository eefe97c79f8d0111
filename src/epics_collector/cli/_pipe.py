"""A standard output that a reader closed (``| head``) ends a command quietly.

A shell's tools die of SIGPIPE when the reader of their output goes away: the pipeline
ends, with status 141. Python raises ``BrokenPipeError`` instead, from whichever thread
wrote: in the main thread click turns it into exit status 1, and in p4p's callback
thread (``monitor``) it printed a traceback while the command ran on for good.

:func:`install` puts a guard in front of standard output: a write or flush to a closed
pipe raises :class:`PipeClosedError` (not an ``OSError``, so click passes it on) in
the thread that wrote. A callback thread tells the command to stop
(:func:`closed_in_thread`); :func:`main` catches the error and exits with
:data:`PIPE_EXIT`, after pointing the descriptor at ``/dev/null`` so that the
interpreter's last flush writes nowhere.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any, TextIO

PIPE_EXIT = 128 + signal.SIGPIPE  # what a shell reports for a tool killed by SIGPIPE


class PipeClosedError(Exception):
    """Standard output's reader went away."""


class _GuardedOutput:
    """Standard output, with a closed pipe raised as :class:`PipeClosedError`."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            raise PipeClosedError from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise PipeClosedError from None

    def __getattr__(self, name: str) -> Any:  # isatty, fileno, encoding...: the stream's
        return getattr(self._stream, name)


def install() -> None:
    """Guard standard output for the rest of the process (idempotent)."""
    if not isinstance(sys.stdout, _GuardedOutput):
        sys.stdout = _GuardedOutput(sys.stdout)  # type: ignore[assignment]


def silence() -> None:
    """Point standard output at ``/dev/null``: nothing more is written, nothing raises."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.__stdout__.fileno() if sys.__stdout__ else 1)
    finally:
        os.close(devnull)
