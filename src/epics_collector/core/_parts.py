"""Parts of a device, and the scans that run declared methods periodically.

A device too big for one class is built from parts, as FastCS builds a controller from
sub-controllers and caproto a PV group from ``SubGroup``: each part is a plain object,
constructed with what it needs (the recorder, the config, a ``report`` callable), that
declares its own PVs, RPCs and scans as class attributes exactly as a device does. The
device serves them flat under its prefix (:meth:`Device.add_part`), so splitting a device
into parts changes no PV name. A part never gets the device itself: handing each part its
dependencies, rather than mixing methods into the device, is what keeps the parts free of
import cycles and of each other's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any, Self

from epics_collector.core._attributes import AttrR, Rpc, Scan

log = logging.getLogger(__name__)
SCAN_STOP_WAIT = 10.0  # seconds a stop lets a running scan finish before cancelling it
Declaration = AttrR[Any] | Rpc | Scan


class Part:
    """A piece of a device: its PVs, RPCs and scans, served flat by the device.

    It declares PVs (:class:`AttrR`, ``@command``), ``@rpc`` and ``@scan`` methods as
    class attributes, as a device does. Its put handlers, commands, RPCs and scans get
    the part as ``self``. Its PVs are its own from construction (its ``__init__`` may
    set them); a device class names the part types it may add in ``Device.parts``, so
    the PV tables of the docs list their PVs.
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        part = super().__new__(cls)
        for attribute, declaration in declarations(cls).items():
            if isinstance(declaration, AttrR):
                part.__dict__[attribute] = declaration.bind()
        return part


def declarations(cls: type) -> dict[str, Declaration]:
    """What ``cls`` and its bases declare, by attribute name (a subclass's win)."""
    found: dict[str, Declaration] = {}
    for klass in reversed(cls.__mro__):
        for attribute, value in vars(klass).items():
            if isinstance(value, AttrR | Rpc | Scan):
                found[attribute] = value
    return found


class Scans:
    """Runs declared ``@scan`` methods, each on its owner (the device or a part).

    A scan runs every period while started; a run that raises is reported and the scan
    goes on. :meth:`stop` lets a running scan finish its run and starts none after, so a
    scan can never reach what the device closes next (FastCS's order).
    """

    def __init__(self, report: Callable[[str], None]) -> None:
        self._declared: list[tuple[Scan, object]] = []
        self._report = report
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()

    def add(self, declaration: Scan, owner: object) -> None:
        """Run ``declaration`` on ``owner`` once started (and at every later start)."""
        self._declared.append((declaration, owner))

    def start(self) -> None:
        """Start every scan (on the running event loop)."""
        self._stopping = asyncio.Event()
        self._tasks = [
            asyncio.create_task(self._run(declaration, owner), name=declaration.name)
            for declaration, owner in self._declared
        ]

    async def stop(self) -> None:
        """Let running scans finish their run; cancel one still running after the wait."""
        self._stopping.set()
        tasks, self._tasks = self._tasks, []
        if not tasks:
            return
        _, running = await asyncio.wait(tasks, timeout=SCAN_STOP_WAIT)
        for task in running:
            log.error(
                "scan %s still running %g s after stop: cancelled", task.get_name(), SCAN_STOP_WAIT
            )
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self, declaration: Scan, owner: object) -> None:
        loop = asyncio.get_running_loop()
        next_time = loop.time()
        while not self._stopping.is_set():
            try:
                await declaration.method(owner)
            except Exception as error:  # a bug or a fault: keep its traceback, say it
                log.exception("scan %s", declaration.name)
                self._report(f"{declaration.name} failed: {error}")
            next_time = max(next_time + declaration.period, loop.time())
            with contextlib.suppress(TimeoutError):  # the period, or stop: whichever first
                await asyncio.wait_for(self._stopping.wait(), next_time - loop.time())
