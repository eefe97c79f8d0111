"""The factory's checks of a request: everything is checked before anything starts.

:class:`Requests` owns the names and prefixes of devices being created (so two Creates
never take one), turns a Create's arguments into a :class:`DeviceSpec` (type, name,
prefix, config validated against the type's schema in a limited child process) and
refuses, with the reason, whatever this factory does not allow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from epics_collector.core import (
    Caller,
    Device,
    RpcError,
    UnknownDeviceTypeError,
    device_type_names,
    is_this_host,
    load_device_type,
    shorten,
)
from epics_collector.factory._config import DeviceSpec, FactoryConfig, check_name, check_prefix
from epics_collector.factory._config_check import ConfigRefusedError, checked, resolve_upload
from epics_collector.factory._supervisor import Supervisor


def text_argument(value: Any, what: str, limit: int = 200) -> str:
    """``value`` if it is a string argument within ``limit`` characters; RpcError if not."""
    if not isinstance(value, str):
        raise RpcError(f"{what} must be a string, got {type(value).__name__}")
    if len(value) > limit:
        raise RpcError(f"{what} is too long ({len(value)} characters; at most {limit})")
    if what != "config" and any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise RpcError(f"{what} {shorten(repr(value))} contains control characters")
    return value


class Requests:
    """Checks Create, Destroy and Restart requests against the factory's config and state."""

    def __init__(
        self,
        config: FactoryConfig,
        data_dir: Path,
        prefix: Callable[[], str],
        supervisors: Mapping[str, Supervisor],
    ) -> None:
        self.config, self.data_dir, self.prefix = config, data_dir, prefix
        self.supervisors = supervisors  # the factory's, read only here
        allowed = config.types
        #: The device types Create may make: registered ones the config allows.
        self.allowed_types = [t for t in device_type_names() if allowed is None or t in allowed]
        self._names: set[str] = set()  # of devices being created
        self._prefixes: set[str] = set()

    @contextmanager
    def reserved(self, spec: DeviceSpec) -> Iterator[None]:
        """Hold ``spec``'s name and prefix while its device is being created."""
        self.check_free(spec.name)  # again: another Create may have taken it meanwhile
        self.check_prefix_free(spec.prefix)
        self._names.add(spec.name)
        self._prefixes.add(spec.prefix)
        try:
            yield
        finally:
            self._names.discard(spec.name)
            self._prefixes.discard(spec.prefix)

    def pv_names(self, spec: DeviceSpec) -> list[str]:
        """The names to check before a device is started (a sample of at most 2000).

        Under the factory's own prefix its State is enough (the factory knows its own
        devices); under another prefix the operator allowed, every name of the device.
        """
        if spec.prefix.startswith(self.prefix()):
            return [spec.prefix + "State"]
        model = load_device_type(spec.type)(spec.config, data_dir=self.data_dir / spec.name)
        return [spec.prefix + name for name in [*model.pvs, *model.rpcs]][:2000]

    def resolved(self, config: dict[str, Any], trusted: bool = True) -> dict[str, Any]:
        """``config`` with a named upload destination resolved (see :func:`resolve_upload`)."""
        try:
            return resolve_upload(config, self.config.destinations, trusted)
        except ConfigRefusedError as error:
            raise RpcError(str(error)) from None

    def device_type(self, type_name: str) -> type[Device[Any]]:
        if type_name not in self.allowed_types:
            allowed = ", ".join(self.allowed_types) or "none"
            raise RpcError(f"unknown device type {shorten(repr(type_name))}; allowed: {allowed}")
        try:
            return load_device_type(type_name)
        except UnknownDeviceTypeError as error:
            raise RpcError(str(error)) from None

    def _check_capacity(self, capacity: Any) -> None:
        limit = self.config.max_capacity
        if limit is not None and isinstance(capacity, int) and capacity > limit:
            raise RpcError(f"capacity {capacity} exceeds this factory's max_capacity {limit}")

    async def spec(
        self, type_name: str, name: str, config_text: str, prefix: str, caller: Caller
    ) -> DeviceSpec:
        """Check a Create request completely before anything is started.

        The configuration is parsed and validated without blocking the event loop (a
        long one in a limited child process: :func:`checked`), after the cheap checks.
        """
        type_name = text_argument(type_name, "type", 100)
        name = text_argument(name, "name", 100)
        config_text = text_argument(config_text, "config", self.config.create_max_chars)
        prefix = text_argument(prefix, "prefix", 100)
        if not type_name or not name:
            raise RpcError("Create needs the arguments type and name (and optionally config)")
        self.device_type(type_name)
        try:
            check_name(name)
        except ValueError as error:
            raise RpcError(f"{shorten(repr(name))}: {error}") from None
        self.check_free(name)
        request = {
            "type": type_name,
            "text": config_text,
            "destinations": self.config.destinations,
            "trusted": caller.local or is_this_host(caller.host),
        }
        try:
            answer = await checked(request)
        except ConfigRefusedError as error:
            raise RpcError(shorten(str(error), 500)) from None
        config: dict[str, Any] = answer["config"]
        prefix = prefix or answer["prefix"]
        try:
            prefix = check_prefix(prefix or f"{self.prefix()}{name}:")
        except ValueError as error:
            raise RpcError(f"{shorten(repr(name))}: {error}") from None
        roots = [self.prefix(), *self.config.prefixes]
        if not any(prefix.startswith(root) for root in roots):
            raise RpcError(
                f"prefix {prefix!r} is outside this factory's {', '.join(map(repr, roots))} "
                "(the factory's config lists any other allowed prefixes under `prefixes`)"
            )
        self.check_prefix_free(prefix)
        self._check_capacity(answer["capacity"])
        return DeviceSpec(name=name, type=type_name, prefix=prefix, config=config)

    def check_free(self, name: str) -> None:
        """Refuse a name in use (or being created), or one device too many."""
        if name in self.supervisors or name in self._names:
            raise RpcError(
                f"a device named {name!r} exists already: Destroy it first, or use another name"
            )
        if len(self.supervisors) + len(self._names) >= self.config.max_devices:
            raise RpcError(f"this factory runs at most {self.config.max_devices} devices")

    def check_prefix_free(self, prefix: str) -> None:
        """Refuse a prefix this factory uses (or is creating a device under)."""
        taken = {s.spec.prefix: s.spec.name for s in self.supervisors.values()}
        if prefix in taken or prefix == self.prefix():
            raise RpcError(f"prefix {prefix!r} is in use by {taken.get(prefix, 'the factory')}")
        if prefix in self._prefixes:
            raise RpcError(f"prefix {prefix!r} is in use by a device being created")

    def named(self, name: Any) -> Supervisor:
        name = text_argument(name, "name", 100)
        supervisor = self.supervisors.get(name)
        if supervisor is None:
            known = ", ".join(self.supervisors) or "none"
            raise RpcError(f"no device named {shorten(repr(name))}; devices: {known}")
        return supervisor
