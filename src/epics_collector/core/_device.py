"""The device base: declared PVs, common PVs, lifecycle, and error reporting."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from epics_collector.core._access import AccessPolicy, Operation, refusal
from epics_collector.core._alarm import Severity, Status
from epics_collector.core._attributes import AttrR, AttrRW, Caller, Rpc, scan
from epics_collector.core._config import MAX_CONFIG_CHARS, DeviceConfig, shorten, validate_config
from epics_collector.core._datatypes import Enum, Int, String
from epics_collector.core._names import DevicePv
from epics_collector.core._outside import OutsideNames
from epics_collector.core._parts import Part, Scans, declarations
from epics_collector.core._pvi import PVI, pvi_attr, pvi_entries
from epics_collector.core._reads import BusyError
from epics_collector.core._served import PvRegistry
from epics_collector.core._sources import Sources
from epics_collector.core._threads import LoopHandOff

ConfigT = TypeVar("ConfigT", bound=DeviceConfig)
#: The client of the put or RPC being handled (set per request task by :class:`Device`).
current_caller: ContextVar[Caller] = ContextVar("current_caller", default=Caller())  # noqa: B039 (frozen)
log = logging.getLogger(__name__)
#: What handlers raise to refuse a request (bad input, not allowed, no such thing, busy);
#: any other exception is a bug and is logged with its traceback.
REFUSALS = (ValueError, PermissionError, LookupError, BusyError)
PartT = TypeVar("PartT", bound=Part)


class PutError(Exception):
    """A put was refused; the text is what the client sees."""


class RpcError(Exception):
    """An RPC failed; the text is what the client sees."""


class DeviceStates(StrEnum):
    """States of a device type; every type has ``Fault``. Subclasses define their own."""

    IDLE = "Idle"
    FAULT = "Fault"


class Device(PvRegistry, Generic[ConfigT]):
    """Base class of all devices.

    A subclass declares PVs as class attributes (:class:`AttrR`, :class:`AttrRW`,
    ``@command``, ``@rpc``, ``@scan``), names its ``config_model`` and ``States``,
    may add config-dependent PVs in :meth:`create_dynamic_pvs`, and may be built from
    :class:`Part` objects that declare theirs (:meth:`add_part`). The PVA layer serves
    :attr:`pvs` and :attr:`rpcs` under the device's prefix.
    """

    config_model: ClassVar[type[DeviceConfig]] = DeviceConfig
    States: ClassVar[type[StrEnum]] = DeviceStates
    #: The name of the State PV (made per instance: its choices are the type's States).
    STATE: ClassVar[str] = DevicePv.STATE
    #: Whether the device may serve names outside its prefix (:attr:`outside`).
    serves_outside: ClassVar[bool] = False
    #: The part types an instance may add (:meth:`add_part`); the docs list their PVs.
    parts: ClassVar[tuple[type[Part], ...]] = ()

    message = AttrR(
        String(),
        name=DevicePv.MESSAGE,
        description=(
            "Last status or error; alarm severity MINOR for a refusal by the access policy "
            "or a failed handler, MAJOR for a "
            "fault (status DEVICE, alarm message = the text)"
        ),
    )
    config_json = AttrR(
        String(max_length=MAX_CONFIG_CHARS),
        name=DevicePv.CONFIG,
        description="The device's configuration as JSON (defaults filled in)",
    )
    heartbeat = AttrR(
        Int(), name=DevicePv.HEARTBEAT, description="+1 about once a second while the device runs"
    )
    refused = AttrR(
        Int(),
        name=DevicePv.REFUSED,
        description="Requests the access policy refused (MINOR alarm once > 0)",
    )

    def __init__(
        self,
        config: ConfigT | Mapping[str, Any],
        *,
        data_dir: Path | None = None,
        sources: Sources | None = None,
    ):
        if "Fault" not in {str(s) for s in self.States}:
            raise TypeError(f"{type(self).__name__}.States must include Fault")
        self.config: ConfigT = validate_config(self.config_model, config)  # type: ignore[assignment]
        self.data_dir = data_dir or Path.cwd()
        #: The PV prefix the device is served under (set by the transport).
        self.prefix = ""
        #: Source PVs for devices that read other PVs (given by whoever runs the device).
        self.sources = sources
        PvRegistry.__init__(self)
        #: PVs served by full name, outside the prefix (a factory's prefix claims); only
        #: for devices whose class sets :attr:`serves_outside`.
        self.outside = OutsideNames(type(self).__name__, self.serves_outside)
        self.rpcs: dict[str, Rpc] = {}
        #: Whose methods handle each PV's puts and each RPC (``self``, or a part).
        self._handlers: dict[str, object] = {}
        self._scans = Scans(lambda text: self.report(text, Severity.MAJOR))
        self._hand_off = LoopHandOff()
        self._held: Severity | None = None  # a problem Message keeps (see hold)
        self._serve_declarations(self)
        choices = [str(s) for s in self.States]
        self.state = self.add_pv(
            AttrR(Enum(choices=choices), name=self.STATE, description="Device state")
        )
        self.state.set(choices[0])
        self.message.set("")
        self.access = self.config.access or AccessPolicy()
        self.config_json.set(self.config.served_json())
        self.heartbeat.set(0)
        self.refused.set(0)
        self.create_dynamic_pvs()
        #: ``P:PVI``: every PV above by field, for ophyd-async (see ``core._pvi``).
        self.pvi = self.add_pv(pvi_attr(PVI, self._pvi_entries))

    def _pvi_entries(self) -> dict[str, dict[str, str]]:
        return pvi_entries(self.prefix, list(self.pvs.values()))

    def _serve_declarations(self, owner: object) -> None:
        """Serve what ``owner``'s class declares, its handlers run on ``owner``."""
        for attribute, declaration in declarations(type(owner)).items():
            if isinstance(declaration, AttrR):
                bound = owner.__dict__.get(attribute)  # a part's: bound when it was made
                if bound is None:
                    bound = owner.__dict__[attribute] = declaration.bind()
                self.add_pv(bound)
                self._handlers[bound.name] = owner
            elif isinstance(declaration, Rpc):
                if declaration.name in self.rpcs:
                    raise ValueError(f"duplicate RPC name {declaration.name!r}")
                self.rpcs[declaration.name] = declaration
                self._handlers[declaration.name] = owner
            else:
                self._scans.add(declaration, owner)

    def add_part(self, part: PartT) -> PartT:
        """Serve the PVs, RPCs and scans ``part`` declares, flat under the prefix.

        Call from ``__init__`` (before the device starts); ``part``'s type must be one of
        :attr:`parts`.
        """
        if type(part) not in self.parts:
            raise TypeError(f"{type(self).__name__}.parts does not list {type(part).__name__}")
        self._serve_declarations(part)
        return part

    def create_dynamic_pvs(self) -> None:
        """Add PVs that depend on the configuration (override; use :meth:`add_pv`)."""

    # status -----------------------------------------------------------------------------

    def set_state(self, state: StrEnum) -> None:
        """Change the device state."""
        self.state.set(str(state))

    def hold(self, text: str, severity: Severity = Severity.MAJOR) -> None:
        """Show ``text`` in Message and keep it there until :meth:`release`.

        For a problem an operator must see whenever they look (history lost to damage):
        later reports of a lower severity are logged but do not replace it.
        """
        self._held = severity
        self.report(text, severity)

    def release(self) -> None:
        """Let later reports replace a held problem (acknowledged, or cleared)."""
        self._held = None

    def report(self, text: str, severity: Severity = Severity.NO_ALARM) -> None:
        """Show ``text`` in Message with an alarm severity (and log it).

        While a problem is held (:meth:`hold`), a report of a lower severity is only
        logged.
        """
        held = self._held
        if held is not None and severity < held:
            log.log(logging.INFO if severity == Severity.NO_ALARM else logging.WARNING, "%s", text)
            return
        status = Status.NO_STATUS if severity == Severity.NO_ALARM else Status.DEVICE
        self.message.set(text, severity=severity, status=status, message=text if status else "")
        log.log(logging.INFO if severity == Severity.NO_ALARM else logging.WARNING, "%s", text)

    def fault(self, text: str) -> None:
        """Enter ``Fault`` and show why (MAJOR alarm on Message)."""
        self.set_state(self.States("Fault"))
        self.report(text, Severity.MAJOR)

    # requests from clients ------------------------------------------------------------------

    async def put(self, name: str, value: Any, caller: Caller | None = None) -> None:
        """A client put to PV ``name``; raise :class:`PutError` with a clear text if refused.

        Put handlers find the client in :data:`current_caller`.
        """
        family = self.family_of(name)
        if family is None:
            await self._put(name, self.pvs.get(name), value, caller)
            return
        attr = family.make(name)
        try:
            await self._put(name, attr, value, caller)
        finally:
            family.release(name)

    async def _put(
        self, name: str, attr: AttrR[Any] | None, value: Any, caller: Caller | None
    ) -> None:
        if not isinstance(attr, AttrRW):
            raise PutError(f"{name} is read-only" if attr else f"no PV named {name}")
        caller = caller or Caller(local=True)  # in-process: the owner itself
        self._check_access(attr.access, f"put to {name}", caller, PutError)
        current_caller.set(caller)  # this request's task only
        try:
            await attr.put(self._handlers.get(name, self), value)
        except REFUSALS as error:  # the request's fault: said to that client only, as RPCs
            text = f"put to {name} refused: {error}"
            log.info("%s (from %s)", shorten(text, 200), caller.host or "this process")
            raise PutError(text) from error
        except Exception as error:  # a bug, not the request: keep its traceback, say it
            log.exception("put to %s", name)
            text = f"put to {name} refused: {error}"
            self.report(text, Severity.MINOR)
            raise PutError(text) from error

    def allows(self, operation: Operation, caller: Caller) -> bool:
        """Whether the access policy lets ``caller`` do ``operation``."""
        return caller.local or self.access.allows(operation, caller.host, caller.account)

    def _check_access(
        self, operation: Operation, what: str, caller: Caller, error: type[Exception]
    ) -> None:
        if not self.allows(operation, caller):
            raise error(self.count_refusal(what, caller, operation))

    def count_refusal(
        self, what: str, caller: Caller, operation: Operation = Operation.READ
    ) -> str:
        """Count and report a request the policy refused (event loop); the error text."""
        denied = str(refusal(operation, what, caller.host, caller.account))
        self.refused.set(self.refused.value + 1, severity=Severity.MINOR)
        self.report(denied, Severity.MINOR)
        return denied

    def call_soon(self, function: Callable[..., Any], *args: Any) -> None:
        """Run ``function(*args)`` on the device's event loop soon, from any thread.

        The one way other threads (sources' drain, processing, pvxs's server thread) hand
        work to the loop, which owns the device's PVs; calls run in the order made, a
        call that raises is logged, and calls after the loop closed are dropped.
        """
        self._hand_off.call_soon(function, *args)

    async def call(
        self, name: str, arguments: Mapping[str, Any], caller: Caller | None = None
    ) -> Any:
        """A client RPC; raise :class:`RpcError` with a clear text on failure.

        A refused request (bad arguments, no such thing, busy) is an error to that client
        only: its text, which the client chose, never reaches Message. A handler that
        fails otherwise is a bug: logged with its traceback and shown in Message.
        """
        handler = self.rpcs.get(name)
        if handler is None:
            raise RpcError(f"no RPC named {name}")
        caller = caller or Caller(local=True)  # in-process: the owner itself
        self._check_access(handler.access, name, caller, RpcError)
        extra = {"caller": caller} if handler.with_caller else {}
        owner = self._handlers[name]
        try:
            inspect.signature(handler.method).bind(owner, **arguments, **extra)
        except TypeError as error:
            raise self._refused(
                name, f"{name}: bad arguments {sorted(arguments)}: {error}"
            ) from None
        try:
            return await handler.method(owner, **arguments, **extra)
        except RpcError as error:
            raise self._refused(name, f"{name}: {error}") from None
        except REFUSALS as error:
            raise self._refused(name, f"{name} failed: {error}") from None
        except Exception as error:  # a bug, not the request: keep its traceback
            log.exception("RPC %s", name)
            text = f"{name} failed: {type(error).__name__}: {error}"
            self.report(text, Severity.MINOR)
            raise RpcError(text) from None

    @staticmethod
    def _refused(name: str, text: str) -> RpcError:
        log.debug("RPC %s refused: %s", name, shorten(text, 200))
        return RpcError(text)

    # lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the scans, then run :meth:`on_start`; a failure puts the device in Fault."""
        self._hand_off.bind()
        self._scans.start()
        try:
            await self.on_start()
        except Exception as error:
            log.exception("start failed")
            self.fault(f"start failed: {error}")

    async def stop(self) -> None:
        """Stop the scans, then run :meth:`on_stop` (which closes stores).

        Scans stop first, as in FastCS: a running scan (a flush, say) finishes its run
        and none starts after, so nothing a scan does can reach what :meth:`on_stop`
        closed (see :class:`Scans`).
        """
        await self._scans.stop()
        await self.on_stop()

    async def on_start(self) -> None:
        """Subclass hook: connect sources, open files."""

    async def on_stop(self) -> None:
        """Subclass hook: flush and close."""

    @scan(1.0)
    async def _beat(self) -> None:
        self.heartbeat.set(self.heartbeat.value + 1)
