"""Serve a device over PVAccess: walk its PVs and RPCs, build SharedPVs, route requests."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, NamedTuple, cast

import numpy as np
from p4p import Value
from p4p.nt import NTScalar, NTTable
from p4p.server import DynamicProvider, Server, ServerOperation, StaticProvider
from p4p.server.asyncio import SharedPV

from epics_collector.core import (
    AttrR,
    Caller,
    Device,
    Operation,
    PutError,
    PvFamily,
    Reading,
    RpcError,
)
from epics_collector.pva._network import Network
from epics_collector.pva._p4p import ServedPV, on_pvxs_thread, post_value
from epics_collector.pva._types import NtMapping, _array_code

log = logging.getLogger(__name__)
_RPC_TYPE = NTScalar("s", display=True)
LAZY_RATE = 10.0  # posts per second of a lazy PV that no client is connected to


class _Poster:
    """Posts an attribute's readings to its SharedPV (the attribute's listener).

    Called by :meth:`AttrR.set` with the attribute's lock held: a reading is stored and
    posted as one step, so two threads setting it never leave an older value served.
    A lazy attribute is posted on every set only while clients are connected; without
    clients only the newest reading is posted, by :meth:`flush` (``LAZY_RATE`` a second),
    so a processor's unwatched outputs cost no PVA Value per run.
    """

    def __init__(self, attr: AttrR[Any], mapping: NtMapping) -> None:
        self.attr, self.mapping = attr, mapping
        self.pv: Any = None  # the SharedPV, set once made
        self.clients = 0  # channels on a lazy attribute (pvxs's thread, under the lock)
        self.dirty = False  # a lazy attribute was set unseen (under the attribute's lock)
        self._plain = mapping.plain  # NTScalar(Array): the alarm is posted when it changes
        self._alarm: tuple[Any, ...] | None = None  # the alarm last posted (None: unknown)

    def __call__(self, reading: Reading) -> None:
        """A new reading (the thread that set it, holding the attribute's lock)."""
        pv, attr = self.pv, self.attr
        if pv is None or not pv.isOpen():
            return
        if attr.lazy and not self.clients:
            self.dirty = True
            return
        if self._plain and attr.refresh is None:  # the hot path of every scalar post
            alarm = reading[2:]  # severity, status, message
            if alarm == self._alarm:
                post_value(pv, self.mapping.stamped(reading))
                return
            self._alarm = alarm
        post_value(pv, self.mapping.value(reading))  # no wrapping: a Value
        if attr.refresh is not None:  # on demand: p4p holds the served copy
            attr.forget()

    def post_current(self) -> None:
        """Post the attribute's newest reading (any thread)."""
        with self.attr.locked():
            self.dirty = False
            if self.pv is not None and self.pv.isOpen():
                reading = self.attr.reading
                post_value(self.pv, self.mapping.value(reading))
                self._alarm = reading[2:]

    def flush(self) -> None:
        """Post a lazy attribute's newest reading if it changed unseen (event loop)."""
        if self.dirty:
            self.post_current()


class _AttrHandler:
    def __init__(
        self,
        device: Device[Any],
        attr: AttrR[Any],
        mapping: NtMapping,
        poster: _Poster,
        released: Callable[[], None] | None = None,
    ) -> None:
        self.device, self.attr, self.mapping, self.poster = device, attr, mapping, poster
        self.name = attr.name
        #: A family's PV: called when its last client leaves (the PV is then dropped).
        self.released = released

    @on_pvxs_thread
    def onFirstConnect(self, pv: SharedPV) -> None:  # noqa: N802 (p4p's name)
        """An on-demand PV: compute its value now and serve it while clients watch.

        A lazy PV: post its newest value and from now on every value. Runs on pvxs's
        server thread (see :class:`ServedPV`), so it only reads the device's state.
        """
        if self.attr.lazy:
            with self.attr.locked():
                self.poster.clients += 1
                self.poster.post_current()
        if self.attr.on_demand:
            assert self.attr.refresh is not None
            # computed and opened under the attribute's lock: a newer value the loop sets
            # meanwhile is posted after the open, never lost before it
            with self.attr.locked():
                self.attr.watchers += 1
                self.attr.refresh()
                pv.open(self.mapping.initial(self.attr.reading))
                self.attr.forget()  # p4p holds the served copy; ours would double the memory

    @on_pvxs_thread
    def onLastDisconnect(self, pv: SharedPV) -> None:  # noqa: N802 (p4p's name)
        """An on-demand PV: stop serving (and free) it when the last client leaves."""
        if self.attr.lazy:
            with self.attr.locked():
                self.poster.clients -= 1
        if self.attr.on_demand:
            with self.attr.locked():
                self.attr.watchers -= 1
                pv.close()
                if not self.attr.watched:
                    self.attr.forget()
        if self.released is not None:
            self.released()

    async def put(self, pv: SharedPV, op: ServerOperation) -> None:
        try:
            caller = Caller(peer=op.peer() or "", account=op.account() or "")
            await self.device.put(self.name, self.mapping.from_put(op.value()), caller)
        except PutError as error:
            op.done(error=str(error))
        except Exception as error:  # a malformed request must never kill the device
            log.exception("put to %s", self.name)
            op.done(error=f"put to {self.name} failed: {error}")
        else:
            op.done()


class _RpcHandler:
    def __init__(self, device: Device[Any], name: str) -> None:
        self.device, self.name = device, name

    async def rpc(self, pv: SharedPV, op: ServerOperation) -> None:
        try:
            request = op.value()
            query = request["query"] if "query" in request else request
            arguments = {key: query[key] for key in query.keys()}
            caller = Caller(peer=op.peer() or "", account=op.account() or "")
            op.done(rpc_result(await self.device.call(self.name, arguments, caller)))
        except RpcError as error:
            op.done(error=str(error))
        except Exception as error:
            log.exception("rpc %s", self.name)
            op.done(error=f"{self.name} failed: {error}")


def rpc_result(result: Any) -> Value:
    """Wrap an RPC's return: a Value as is, a mapping of columns as NTTable, else a string."""
    if isinstance(result, Value):
        return result
    if isinstance(result, dict):
        columns = {k: np.asarray(v) for k, v in result.items()}
        table = NTTable(columns=[(k, _array_code(v.dtype)) for k, v in columns.items()])
        return Value(table.type, {"labels": list(columns), "value": columns})
    return _RPC_TYPE.wrap(str(result))


class _Channels:
    """The device's PVs by full name, handed out to peers the policy lets read.

    A p4p ``DynamicProvider`` handler: ``makeChannel`` sees the peer's address, so a
    host without ``read`` access gets no channel at all (its search is answered, its
    connection refused and counted in Refused). Names of a :class:`PvFamily` are made
    only then, and dropped when their last client leaves.
    """

    def __init__(self, server: DeviceServer) -> None:
        self.server, self.device, self.prefix = server, server.device, server.prefix

    def testChannel(self, name: str) -> bool:  # noqa: N802 (p4p's name)
        if name in self.server.static_pvs:
            return True
        return name.startswith(self.prefix) and self.device.has_pv(name[len(self.prefix) :])

    def makeChannel(self, name: str, peer: str) -> SharedPV | None:  # noqa: N802
        if not self.testChannel(name):
            return None
        caller = Caller(peer=peer)
        if not self.device.allows(Operation.READ, caller):
            self.device.call_soon(self.device.count_refusal, f"read of {name}", caller)
            return None
        return self.server.static_pvs.get(name) or self.server.family_pv(name)


class _FamilyPv(NamedTuple):
    pv: SharedPV
    attr: AttrR[Any]
    poster: _Poster
    family: PvFamily


class DeviceServer:
    """Serves one device under ``prefix`` for as long as the ``async with`` block runs.

    Entering starts a p4p server with the device's PVs and then starts the device;
    leaving stops the device and then the server.
    """

    def __init__(self, device: Device[Any], prefix: str, network: Network) -> None:
        if not prefix:
            raise ValueError("a device needs a non-empty PV prefix")
        self.device, self.prefix, self.network = device, prefix, network
        device.prefix = prefix
        self._pvs: dict[str, SharedPV] = {}
        self._family_pvs: dict[str, _FamilyPv] = {}  # by full name, while clients use them
        self._family_lock = threading.Lock()  # pvxs's thread makes and drops them
        self._loop: asyncio.AbstractEventLoop | None = None  # set on entering
        self._loop_thread: int | None = None  # the loop's thread, which owns the PVs
        self._server: Server | None = None
        self._provider: DynamicProvider | None = None
        self._outside: StaticProvider | None = None  # names outside the prefix
        self._outside_pvs: dict[str, SharedPV] = {}
        self._lazy: dict[str, _Poster] = {}
        self._flusher: asyncio.Task[None] | None = None

    @property
    def pv_names(self) -> list[str]:
        """Full names of the declared PVs served (not those of families)."""
        return list(self._pvs)

    @property
    def static_pvs(self) -> Mapping[str, SharedPV]:
        """The declared PVs and RPCs by full name."""
        return self._pvs

    def _serve_attr(
        self, attr: AttrR[Any], released: Callable[[], None] | None = None
    ) -> tuple[SharedPV, _Poster]:
        mapping = NtMapping(attr.datatype, attr.description)
        initial = None if attr.on_demand else mapping.initial(attr.reading)
        poster = _Poster(attr, mapping)
        handler = _AttrHandler(self.device, attr, mapping, poster, released)
        assert self._loop is not None, "PVs are served from inside the async with block"
        attr.claim(self._loop_thread)  # set on the device's loop only, from now on
        pv = poster.pv = ServedPV(self._loop, cast(Any, handler), initial)
        attr.add_listener(poster)
        if attr.lazy:
            self._lazy[attr.name] = poster
        return pv, poster

    @property
    def family_pvs_served(self) -> int:
        """How many PVs of families are served now (each has a client)."""
        return len(self._family_pvs)

    def family_pv(self, full_name: str) -> SharedPV | None:
        """The served PV of a family's name, made now unless a client uses it already."""
        with self._family_lock:
            served = self._family_pvs.get(full_name)
            if served is not None:
                return served.pv
            name = full_name[len(self.prefix) :]
            family = self.device.family_of(name)
            if family is None:
                return None
            try:
                attr = family.make(name)
            except LookupError:  # (gone since the family said yes: a removed channel)
                return None
            try:
                pv, poster = self._serve_attr(attr, functools.partial(self._drop, full_name))
            except Exception:
                family.release(name)
                raise
            self._family_pvs[full_name] = _FamilyPv(pv, attr, poster, family)
            return pv

    def _drop(self, full_name: str) -> None:
        """A family's PV lost its last client: stop serving it and release it."""
        with self._family_lock:
            served = self._family_pvs.pop(full_name, None)
        if served is not None:
            self._close_family_pv(full_name, served)

    def _close_family_pv(self, full_name: str, served: _FamilyPv) -> None:
        served.attr.remove_listener(served.poster)
        if served.pv.isOpen():
            served.pv.close()
        served.family.release(full_name[len(self.prefix) :])

    async def _flush_lazy(self) -> None:
        """Post lazy attributes that changed while nobody watched, LAZY_RATE times a second."""
        while True:
            await asyncio.sleep(1.0 / LAZY_RATE)
            for poster in list(self._lazy.values()):
                poster.flush()

    async def __aenter__(self) -> DeviceServer:
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        for name, attr in self.device.pvs.items():
            self._pvs[self.prefix + name] = self._serve_attr(attr)[0]
        for name, handler in self.device.rpcs.items():
            initial = _RPC_TYPE.wrap(handler.description)
            initial["display.description"] = handler.description
            rpc = SharedPV(handler=cast(Any, _RpcHandler(self.device, name)), initial=initial)
            self._pvs[self.prefix + name] = rpc
        self._provider = DynamicProvider(f"epics-collector:{self.prefix}", _Channels(self))
        providers: list[Any] = [self._provider]
        self.device.watch_pvs(self._pvs_changed)
        if self.device.serves_outside:
            # names that come and go: a StaticProvider (a DynamicProvider caches a "no"
            # for 10 s, and p4p 4.3's NotYet answers "yes" to every name)
            self._outside = StaticProvider(f"epics-collector-outside:{self.prefix}")
            providers.append(self._outside)
            for full_name, attr in self.device.outside.items():
                self._outside_changed(full_name, attr)
            self.device.outside.watch(self._outside_changed)
        self._server = Server(
            providers=providers,
            conf=self.network.server_conf(),
            useenv=self.network.useenv,
        )
        self._flusher = asyncio.create_task(self._flush_lazy(), name="lazy PVs")
        await self.device.start()
        return self

    def _pvs_changed(self, added: list[AttrR[Any]], removed: list[str]) -> None:
        assert self._provider is not None, "PVs change only while served"
        for attr in added:
            full_name = self.prefix + attr.name
            self._pvs[full_name] = self._serve_attr(attr)[0]
        for name in removed:
            full_name = self.prefix + name
            declared = self._pvs.pop(full_name, None)
            if declared is not None:
                declared.close()
                self._lazy.pop(name, None)
                continue
            with self._family_lock:  # a family's PV withdrawn: closed (and released)
                served = self._family_pvs.pop(full_name, None)
            if served is not None:
                self._close_family_pv(full_name, served)

    def _outside_changed(self, full_name: str, attr: AttrR[Any] | None) -> None:
        """Serve or withdraw a name outside the prefix.

        Served to every reader: it tells only that the name is taken, which a search
        answer tells anyway.
        """
        assert self._outside is not None
        if attr is not None:
            self._outside_pvs[full_name] = pv = self._serve_attr(attr)[0]
            self._outside.add(full_name, pv)
        elif full_name in self._outside_pvs:
            self._outside.remove(full_name)
            self._outside_pvs.pop(full_name).close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            await self.device.stop()
        finally:
            if self._flusher is not None:
                self._flusher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._flusher
            if self._server is not None:
                self._server.stop()
                self._server = None
            for pv in [*self._pvs.values(), *self._outside_pvs.values()]:
                pv.close()
            with self._family_lock:
                served, self._family_pvs = self._family_pvs, {}
            for full_name, family_pv in served.items():
                self._close_family_pv(full_name, family_pv)
