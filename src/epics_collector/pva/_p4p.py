"""The one place that relies on p4p's internals; each behaviour it uses has a test.

p4p's public server API posts through a wrapper and runs every handler callback on the
asyncio loop. The PVA layer needs two things it does not offer:

* :func:`post_value`: post a ready ``Value`` without the wrapper (the hot path of every
  PV post: ``p4p._p4p.SharedPV.post``).
* :class:`ServedPV`: an asyncio SharedPV that can be made off the loop (a family's PV is
  made on pvxs's server thread) and runs callbacks marked with :func:`on_pvxs_thread`
  where pvxs calls them (``SharedPV._exec``), which the deadlock-free open of on-demand
  PVs needs (see the class).

``tests/unit/pva/test_p4p.py`` checks each against the installed p4p, so an upgrade
that changes them fails there, not in a device.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from p4p import Value
from p4p._p4p import SharedPV as _CoreSharedPV
from p4p.server.asyncio import SharedPV
from p4p.server.raw import SharedPV as _RawSharedPV

log = logging.getLogger(__name__)


#: Post ``value`` (a ``Value`` of the PV's type: its marked fields) to ``pv`` as is: pvxs's
#: own post, called directly (a wrapper function would cost every post a call).
post_value: Callable[[SharedPV, Value], None] = _CoreSharedPV.post


def on_pvxs_thread(method: Any) -> Any:
    """Mark a handler callback to run on pvxs's server thread, not on the event loop."""
    method.on_pvxs_thread = True
    return method


class ServedPV(SharedPV):
    """An asyncio SharedPV whose marked callbacks run where pvxs calls them.

    pvxs's ``SharedPV.open`` waits for the server thread while holding the PV's lock,
    and that thread takes the same lock to attach a new channel: an ``open`` from any
    other thread (the event loop) deadlocks the server when a client connects at that
    moment (issue 18, finding 4). Called from ``onFirstConnect`` on the server thread
    itself, the wait is a direct call and the lock is re-entered.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, handler: Any, initial: Any) -> None:
        # p4p's asyncio SharedPV takes the running loop; a family's PV is made on pvxs's
        # thread, so the loop is given and the rest of p4p's __init__ done here
        self.loop = loop
        _RawSharedPV.__init__(self, handler=handler, initial=initial)
        self._disconnected = asyncio.Event()
        self._disconnected.set()

    def _exec(self, op: Any, M: Any, *args: Any) -> None:  # noqa: N803 (p4p's name)
        if getattr(M, "on_pvxs_thread", False):
            try:
                M(*args)
            except Exception:  # never into pvxs; the client sees a PV that does not open
                log.exception("%s failed", getattr(M, "__qualname__", M))
            return
        super()._exec(op, M, *args)
