"""Readiness over a pipe, a process's exit over a pidfd, and the stop request's self-pipe."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from epics_collector.process import ExitWatch, ManagedProcess, ProcessError, StopRequest

CHILD = "tests.unit.process.ready_child"


def test_the_ready_line_comes_through_the_pipe() -> None:
    with ManagedProcess(CHILD, ["ready"]) as child:
        assert child.wait_notified(30) == "ready: ready"
        assert child.running


def test_an_exit_before_ready_is_seen_at_once_with_its_code() -> None:
    # a timeout of 120 s: only the pipe's end-of-file can make this error say "exited"
    with ManagedProcess(CHILD, ["exit"]) as child:
        with pytest.raises(ProcessError, match="exited with 3"):
            child.wait_notified(120)


def test_an_awaited_exit_has_its_status_collected() -> None:
    async def exit_code() -> int | None:
        with ManagedProcess(CHILD, ["exit"]) as child:
            assert await child.wait_exit_async(60)
            return child.popen.returncode

    with ManagedProcess(CHILD, ["exit"]) as child:
        assert child.wait_exit(60) and child.popen.returncode == 3
    assert asyncio.run(exit_code()) == 3


def test_a_silent_child_times_out_and_is_stopped() -> None:
    with ManagedProcess(CHILD, ["silent"]) as child:
        with pytest.raises(ProcessError, match="not ready after 0.5 s"):
            child.wait_notified(0.5)
        assert not child.running


def test_a_grandchild_never_sees_the_parents_pipe() -> None:
    with ManagedProcess(CHILD, ["spawn"]) as child:
        assert child.wait_notified(30) == "ready: spawn"
        assert "grandchild sees None" in child.output()


def test_the_async_wait_gives_the_line_or_none_when_the_child_exits() -> None:
    async def both() -> tuple[str | None, str | None]:
        with ManagedProcess(CHILD, ["ready"]) as ready, ManagedProcess(CHILD, ["exit"]) as gone:
            return await ready.wait_notified_async(30), await gone.wait_notified_async(120)

    assert asyncio.run(both()) == ("ready: ready", None)


def _lingering() -> subprocess.Popen[bytes]:
    """A process that lives until it is killed or its standard input closes."""
    return subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )


def test_an_exit_watch_wakes_on_the_exit_and_signals_only_its_process() -> None:
    with _lingering() as lingering:  # (leaving it closes its stdin and waits)
        with ExitWatch(lingering.pid) as watch:
            assert not watch.wait(0) and not watch.gone
            watch.send(signal.SIGKILL)
            assert watch.wait(60) and watch.gone
            lingering.wait()
            watch.send(signal.SIGKILL)  # reaped: nothing to signal, no error
    assert lingering.returncode == -signal.SIGKILL
    with ExitWatch(lingering.pid) as after:
        assert after.gone  # a pid nobody has (or a stranger's: never ours)


def test_an_exit_watch_waits_on_the_event_loop() -> None:
    async def watch(lingering: subprocess.Popen[bytes]) -> tuple[bool, bool]:
        with ExitWatch(lingering.pid) as exit_watch:
            before = await exit_watch.wait_async(0.05)
            asyncio.get_running_loop().call_soon(lingering.kill)
            return before, await exit_watch.wait_async(60)

    with _lingering() as lingering:  # (leaving it closes its stdin and waits)
        assert asyncio.run(watch(lingering)) == (False, True)


def test_a_stop_request_wakes_its_waiter_from_any_thread() -> None:
    stop = StopRequest()
    threading.Timer(0.05, stop.wake).start()
    began = time.monotonic()
    assert stop.wait(120) is False  # woken, no stop asked
    assert time.monotonic() - began < 60, "not woken: it waited for its timeout"
    threading.Timer(0.05, stop.request, args=(signal.SIGINT,)).start()
    assert stop.wait(120) is True and stop.signal == signal.SIGINT


def test_a_stop_signal_wakes_the_main_thread() -> None:
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop = StopRequest().install()
        threading.Timer(0.05, os.kill, args=(os.getpid(), signal.SIGTERM)).start()
        assert stop.wait(120) is True and stop.signal == signal.SIGTERM
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
