"""PV declarations: typed attributes, commands, RPCs and scans on a device class.

Declarations live on the class; :class:`~epics_collector.core.Device` copies them
per instance, so two devices of one type never share values or listeners.
"""

from __future__ import annotations

import copy
import inspect
import re
import threading
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Generic, NamedTuple, Self, TypeVar, overload

from epics_collector.core import _threads
from epics_collector.core._access import Operation
from epics_collector.core._alarm import Severity, Status
from epics_collector.core._datatypes import DataType, Int

D = TypeVar("D", bound=DataType)
PutHandler = Callable[[Any, Any], Awaitable[None]]
Listener = Callable[["Reading"], None]

_get_ident, _now, _new_reading = threading.get_ident, time.time, tuple.__new__  # on every set


def pv_name(attribute: str) -> str:
    """The one PV naming rule: ``export_path`` -> ``ExportPath``."""
    return "".join(part[:1].upper() + part[1:] for part in attribute.split("_"))


def field_name(name: str) -> str:
    """A field name for a PV name made at run time: ``Param:gain`` -> ``param_gain``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.replace(":", "_"))
    return re.sub(r"[^a-z0-9_]", "_", words.lower()).strip("_")


class Reading(NamedTuple):
    """A value with its timestamp (POSIX seconds) and alarm.

    A named tuple, not a frozen dataclass: it is made once per post, and a tuple is
    three times cheaper to make.
    """

    value: Any
    timestamp: float
    severity: Severity = Severity.NO_ALARM
    status: Status = Status.NO_STATUS
    message: str = ""


class AttrR(Generic[D]):
    """A read-only PV: the device sets it, clients get and monitor it.

    Set only on the thread that owns it (its device's event loop, once served) unless
    declared ``any_thread``; see :mod:`epics_collector.core._threads`. Storing a reading
    and telling the listeners (the PVA layer posts it) happen under the attribute's lock,
    so the newest reading stored is always the last one posted.
    """

    def __init__(
        self,
        datatype: D,
        *,
        description: str = "",
        name: str | None = None,
        lazy: bool = False,
        any_thread: bool = False,
        field: str = "",
    ) -> None:
        self.datatype = datatype
        self.description = description
        self.name = name or ""
        #: For PVs set at high rates (processing outputs): posted on every set only while
        #: a client is connected; otherwise the newest value at most 10 times a second.
        self.lazy = lazy
        #: Whether threads other than the owner may set it (see :meth:`claim`).
        self.any_thread = any_thread
        self._owner: int | None = None  # the thread that may set it (None: not served yet)
        self._lock = threading.RLock()
        self._attribute = field  # set by the class it is declared on, else given
        self.reading = Reading(datatype.initial, time.time(), Severity.INVALID, Status.UNDEFINED)
        self._listeners: list[Listener] = []
        #: For PVs that are costly to keep current (histories): computes the value when a
        #: client first connects; the transport serves the PV only while it is watched.
        self.refresh: Callable[[], None] | None = None
        #: How many transports have clients on this PV (kept by the transport).
        self.watchers = 0

    def __set_name__(self, owner: type, attribute: str) -> None:
        self._attribute = attribute
        self.name = self.name or pv_name(attribute)

    @overload
    def __get__(self, instance: None, owner: type) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type) -> Self: ...
    def __get__(self, instance: object | None, owner: type) -> Self:
        if instance is None:
            return self
        return instance.__dict__[self._attribute]

    def bind(self) -> Self:
        """A fresh per-instance copy of this declaration (no listeners, initial value)."""
        bound = copy.copy(self)
        bound.__dict__["_listeners"] = []  # the copy must not share the class's list
        bound.__dict__["_lock"] = threading.RLock()
        return bound

    def claim(self, thread: int | None = None) -> None:
        """From now on only ``thread`` (default: this one) sets it.

        The PVA layer claims every attribute it serves for the device's event loop.
        Exempt: ``any_thread`` attributes, and on-demand ones (:attr:`refresh`), which
        are computed under their lock by the thread that needs them (pvxs's server
        thread when a client opens one, the loop as data grows).
        """
        free = self.any_thread or self.on_demand
        self._owner = None if free else (thread or threading.get_ident())

    def locked(self) -> AbstractContextManager[Any]:
        """Hold the attribute's lock: no reading is stored or posted meanwhile."""
        return self._lock

    @property
    def value(self) -> Any:
        """The current value."""
        return self.reading.value

    @property
    def attribute(self) -> str:
        """Its field name in the device (and in PVI): declared, given, or from the name."""
        return self._attribute or field_name(self.name)

    @property
    def on_demand(self) -> bool:
        """Whether this PV is computed only while clients watch it (see :attr:`refresh`)."""
        return self.refresh is not None

    @property
    def watched(self) -> bool:
        """Whether any client watches this PV."""
        return self.watchers > 0

    @property
    def writable(self) -> bool:
        """Whether clients may put to this PV."""
        return False

    def set(
        self,
        value: Any,
        *,
        timestamp: float | None = None,
        severity: Severity = Severity.NO_ALARM,
        status: Status = Status.NO_STATUS,
        message: str = "",
    ) -> None:
        """Check and store a new value and tell every listener (the PVA layer posts it)."""
        owner = self._owner
        if owner is not None and owner != _get_ident():  # one comparison when it is right
            _threads.check_owner(self.name, owner)
        reading = _new_reading(  # Reading(...) without its Python-level __new__
            Reading,
            (
                self.datatype.coerce(value),
                _now() if timestamp is None else timestamp,
                severity,
                status,
                message,
            ),
        )
        with self._lock:
            self.reading = reading
            for listener in self._listeners:
                listener(reading)

    def forget(self) -> None:
        """Drop the value: an on-demand PV keeps no copy of what the transport serves."""
        self.reading = Reading(self.datatype.initial, self.reading.timestamp)

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(reading)`` on every :meth:`set`."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (added with :meth:`add_listener`)."""
        self._listeners.remove(listener)


class AttrRW(AttrR[D]):
    """A writable PV; ``@attr.on_put`` attaches the device method that handles puts.

    Without a handler a put just stores the (checked) value.
    """

    def __init__(
        self,
        datatype: D,
        *,
        description: str = "",
        name: str | None = None,
        access: Operation = Operation.CONTROL,
        field: str = "",
    ) -> None:
        super().__init__(datatype, description=description, name=name, field=field)
        self.put_handler: PutHandler | None = None
        self.access = access  # the class of operation a put is (access policy)

    @property
    def writable(self) -> bool:
        return True

    def on_put(self, handler: PutHandler) -> PutHandler:
        """Decorator: ``async def handler(self, value)`` runs on each accepted put."""
        self.put_handler = handler
        return handler

    async def put(self, device: Any, value: Any) -> None:
        """Check ``value``, run the handler, then store it; errors propagate unchanged."""
        value = self.datatype.coerce(value)
        if self.put_handler is not None:
            await self.put_handler(device, value)
        self.set(value)


CommandMethod = Callable[[Any], Awaitable[None]]


class Command(AttrRW[Int]):
    """A command PV: an int, put 1 runs the method, then the PV reads 0 again."""

    def __init__(
        self,
        method: CommandMethod,
        description: str,
        name: str | None = None,
        access: Operation = Operation.CONTROL,
    ) -> None:
        super().__init__(Int(low=0, high=1), description=description, name=name, access=access)
        self.method = method
        self.reading = Reading(0, time.time())

    async def put(self, device: Any, value: Any) -> None:
        """Run the command on 1 (0 is accepted and does nothing)."""
        if self.datatype.coerce(value):
            await self.method(device)
        self.set(0)


def command(
    *, description: str = "", name: str | None = None, access: Operation = Operation.CONTROL
) -> Callable[[CommandMethod], Command]:
    """Declare an ``async def`` method as a command PV (put 1 runs it).

    The PV is named after the method unless ``name`` is given.
    """

    def wrap(method: CommandMethod) -> Command:
        return Command(method, description or inspect.cleandoc(method.__doc__ or ""), name, access)

    return wrap


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as the transport saw it: peer address and account name."""

    peer: str = ""
    account: str = ""
    local: bool = False  # the device's own process (not over the network): always allowed

    @property
    def host(self) -> str:
        """The peer's IP address without the port (``"[::1]:5075"`` -> ``"::1"``)."""
        host = self.peer.rpartition(":")[0] if self.peer.count(":") == 1 else self.peer
        if host.startswith("[") and "]" in host:
            host = host[1 : host.index("]")]
        return host

    @property
    def who(self) -> str:
        """``account@host`` for a log line (``(no user)``, ``local`` where unknown)."""
        return f"{self.account or '(no user)'}@{self.host or 'local'}"


@dataclass
class Rpc:
    """An RPC PV: the method gets the NTURI query arguments, returns a str or a table.

    With ``with_caller`` the method also gets ``caller=`` (a :class:`Caller`), for
    access checks.
    """

    method: Callable[..., Awaitable[Any]]
    description: str = ""
    name: str = ""
    with_caller: bool = False
    access: Operation = Operation.CONTROL

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.name = self.name or pv_name(attribute)


def rpc(
    *,
    description: str = "",
    name: str = "",
    with_caller: bool = False,
    access: Operation = Operation.CONTROL,
) -> Callable[[Callable[..., Awaitable[Any]]], Rpc]:
    """Declare an ``async def method(self, **arguments)`` as an RPC PV named after it."""

    def wrap(method: Callable[..., Awaitable[Any]]) -> Rpc:
        text = description or inspect.cleandoc(method.__doc__ or "")
        return Rpc(method, text, name, with_caller, access)

    return wrap


@dataclass
class Scan:
    """A method the device runs every ``period`` seconds while started."""

    method: Callable[[Any], Awaitable[None]]
    period: float
    name: str = field(default="")

    def __set_name__(self, owner: type, attribute: str) -> None:
        self.name = attribute


def scan(period: float) -> Callable[[Callable[[Any], Awaitable[None]]], Scan]:
    """Declare an ``async def`` method to run every ``period`` seconds."""

    def wrap(method: Callable[[Any], Awaitable[None]]) -> Scan:
        return Scan(method, period)

    return wrap
