"""The blocking API: thin wrappers that run the asyncio implementation on a private loop.

Every method here calls its namesake on the asynchronous object (one implementation);
use the ``Async*`` classes directly inside an event loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar, Unpack, overload

import numpy as np

from epics_collector.client._connection import Connection
from epics_collector.client._devices import (
    AsyncCollector,
    AsyncDevice,
    AsyncProcessor,
    Binned,
    History,
    ViewArgs,
)
from epics_collector.client._errors import ClientError
from epics_collector.client._factory import AsyncFactory, DeviceInfo
from epics_collector.pva import Network

T = TypeVar("T")


class LoopThread:
    """An event loop in a daemon thread; :meth:`run` waits for a coroutine's result."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="epics-collector-client", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and return (or raise) its result."""
        if self.loop.is_closed() or not self._thread.is_alive():
            coroutine.close()
            raise ClientError("this client is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        """Items of an async iterator, one blocking step at a time."""
        try:
            while True:
                try:
                    yield self.run(_next(iterator))
                except StopAsyncIteration:
                    return
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None:
                self.run(close())

    def stop(self) -> None:
        """Stop the loop and its thread."""
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
        self.loop.close()


async def _next(iterator: AsyncIterator[T]) -> T:
    return await anext(iterator)


async def _connection(network: Network | None, timeout: float) -> Connection:
    return Connection(network, timeout)  # made on the loop that will use it


class Device:
    """Blocking proxy of any device (see :class:`AsyncDevice`).

    Proxies come from a :class:`Factory`, or from :meth:`connect` for a device
    anywhere on the network (``with`` then closes the connection).
    """

    _async_type: type[AsyncDevice] = AsyncDevice

    def __init__(self, impl: AsyncDevice, runner: LoopThread, *, owned: bool = False) -> None:
        self._impl, self._run = impl, runner.run
        self._runner, self._owned = runner, owned
        self.prefix = impl.prefix

    @classmethod
    def connect(cls, prefix: str, *, network: Network | None = None, timeout: float = 5.0) -> Self:
        """A proxy of the device served under ``prefix`` (no factory needed)."""
        runner = LoopThread()
        connection = runner.run(_connection(network, timeout))
        return cls(cls._async_type(connection, prefix), runner, owned=True)

    def close(self) -> None:
        """Close the connection :meth:`connect` opened (proxies from a factory: no-op)."""
        if self._owned and not self._runner.loop.is_closed():
            self._impl.connection.close()
            self._runner.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prefix!r})"

    def get(self, pv: str) -> Any:
        """The value of the device's PV ``pv`` (the part after the prefix)."""
        return self._run(self._impl.get(pv))

    def put(self, pv: str, value: Any) -> None:
        """Put to the device's PV ``pv``; a refusal raises DeviceError."""
        self._run(self._impl.put(pv, value))

    def call(self, rpc: str, **arguments: Any) -> Any:
        """Call the device's RPC ``rpc`` with string arguments; a refusal raises DeviceError."""
        return self._run(self._impl.call(rpc, **arguments))

    def state(self) -> str:
        """The device's State."""
        return self._run(self._impl.state())

    def message(self) -> str:
        """The device's last status or error text."""
        return self._run(self._impl.message())

    def config(self) -> dict[str, Any]:
        """The device's configuration (defaults filled in)."""
        return self._run(self._impl.config())

    def wait_until(self, state: str, timeout: float = 10.0) -> None:
        """Wait until State is ``state``."""
        self._run(self._impl.wait_until(state, timeout))


class Collector(Device):
    """Blocking proxy of a collector (see :class:`AsyncCollector`)."""

    _impl: AsyncCollector
    _async_type = AsyncCollector

    def start(self) -> None:
        """Start recording."""
        self._run(self._impl.start())

    def stop(self) -> None:
        """Stop recording (the history stays)."""
        self._run(self._impl.stop())

    def clear(self) -> None:
        """Forget the recorded history."""
        self._run(self._impl.clear())

    def trigger(self) -> None:
        """Take a snapshot now."""
        self._run(self._impl.trigger())

    def count(self) -> int:
        """Samples recorded in total."""
        return self._run(self._impl.count())

    def channels(self) -> dict[str, np.ndarray]:
        """The Channels table."""
        return self._run(self._impl.channels())

    @overload
    def history(self, channel: str) -> History: ...

    @overload
    def history(self, channel: str, **view: Unpack[ViewArgs]) -> History | Binned: ...

    def history(self, channel: str, **view: Unpack[ViewArgs]) -> History | Binned:
        """A channel's history, all of it or part of it (see :meth:`AsyncCollector.history`)."""
        return self._run(self._impl.history(channel, **view))

    def snapshots(self) -> dict[str, np.ndarray]:
        """The Snapshots table."""
        return self._run(self._impl.snapshots())

    def annotations(self) -> dict[str, np.ndarray]:
        """The Annotations table."""
        return self._run(self._impl.annotations())

    def annotate(self, text: str) -> None:
        """Add a timestamped note."""
        self._run(self._impl.annotate(text))

    def export(self, name: str, format: str = "nexus", timeout: float = 600.0) -> str:  # noqa: A002
        """Write the history to ``name`` in the data directory; return the path."""
        return self._run(self._impl.export(name, format, timeout))

    def upload(self, timeout: float = 600.0) -> str:
        """Upload the last export; return where it went."""
        return self._run(self._impl.upload(timeout))


class Processor(Device):
    """Blocking proxy of a processing device (see :class:`AsyncProcessor`)."""

    _impl: AsyncProcessor
    _async_type = AsyncProcessor

    def enable(self) -> None:
        """Process input updates."""
        self._run(self._impl.enable())

    def disable(self) -> None:
        """Stop processing."""
        self._run(self._impl.disable())

    def params(self) -> dict[str, Any]:
        """The processor's parameters, as they are now."""
        return self._run(self._impl.params())

    def set_param(self, name: str, value: Any) -> None:
        """Change one parameter."""
        self._run(self._impl.set_param(name, value))

    def output_names(self) -> list[str]:
        """The names of the outputs."""
        return self._run(self._impl.output_names())

    def outputs(self) -> dict[str, Any]:
        """Every output's current value."""
        return self._run(self._impl.outputs())

    def monitor(self, output: str) -> Iterator[Any]:
        """Each new value of ``output`` (a blocking iterator; ``break`` ends it)."""
        return self._runner.iterate(self._impl.monitor(output))


def _proxy(device: AsyncDevice, runner: LoopThread) -> Device:
    if isinstance(device, AsyncCollector):
        return Collector(device, runner)
    if isinstance(device, AsyncProcessor):
        return Processor(device, runner)
    return Device(device, runner)


class Factory:
    """Blocking factory client: ``Factory.local()`` or ``Factory.connect("HOST:FAC:")``.

    ``with`` closes it (and stops a factory that :meth:`local` started).
    """

    def __init__(self, impl: AsyncFactory, runner: LoopThread) -> None:
        self._impl, self._runner, self._run = impl, runner, runner.run
        self.prefix = impl.prefix

    def __repr__(self) -> str:
        return f"Factory({self.prefix!r})"

    @classmethod
    def connect(
        cls, prefix: str, *, network: Network | None = None, timeout: float = 5.0
    ) -> Factory:
        """A running factory under ``prefix``."""
        runner = LoopThread()
        try:
            impl = runner.run(AsyncFactory.connect(prefix, network=network, timeout=timeout))
        except BaseException:
            runner.stop()
            raise
        return cls(impl, runner)

    @classmethod
    def local(
        cls,
        prefix: str | None = None,
        *,
        data_dir: Path | str = "epics-collector-data",
        config: Path | str | None = None,
        network: Network | None = None,
        timeout: float = 5.0,
        restore: bool = False,
    ) -> Factory:
        """Start a fresh factory in a child process; :meth:`close` stops it.

        See :meth:`AsyncFactory.local`: ``restore=True`` brings back the devices an
        earlier run created under ``data_dir``.
        """
        runner = LoopThread()
        try:
            impl = runner.run(
                AsyncFactory.local(
                    prefix,
                    data_dir=data_dir,
                    config=config,
                    network=network,
                    timeout=timeout,
                    restore=restore,
                )
            )
        except BaseException:
            runner.stop()
            raise
        return cls(impl, runner)

    def close(self) -> None:
        """Close the connection (stopping a local factory); safe to call twice."""
        if not self._runner.loop.is_closed():
            self._run(self._impl.close())
            self._runner.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def create(
        self, type_name: str, name: str, config: dict[str, Any], prefix: str | None = None
    ) -> Device:
        """Create a device of any registered type."""
        made = self._run(self._impl.create(type_name, name, config, prefix))
        return self.device_at(made, type_name)

    def device_at(self, prefix: str, type_name: str = "") -> Device:
        """A proxy of the device served under ``prefix``."""
        kind = {"collector": AsyncCollector, "processing": AsyncProcessor}
        impl = kind.get(type_name, AsyncDevice)(self._impl.connection, prefix)
        return _proxy(impl, self._runner)

    def create_collector(
        self, name: str, channels: list[Any], *, prefix: str | None = None, **config: Any
    ) -> Collector:
        """Create a collector of ``channels`` with more config as keywords."""
        impl = self._run(self._impl.create_collector(name, channels, prefix=prefix, **config))
        return Collector(impl, self._runner)

    def create_processor(
        self,
        name: str,
        inputs: dict[str, str],
        processor: str | dict[str, Any],
        *,
        params: dict[str, Any] | None = None,
        prefix: str | None = None,
        **config: Any,
    ) -> Processor:
        """Create a processing device."""
        impl = self._run(
            self._impl.create_processor(
                name, inputs, processor, params=params, prefix=prefix, **config
            )
        )
        return Processor(impl, self._runner)

    def destroy(self, name: str) -> None:
        """Stop a device and forget it (its files stay)."""
        self._run(self._impl.destroy(name))

    def restart(self, name: str) -> None:
        """Restart a device's process."""
        self._run(self._impl.restart(name))

    def types(self) -> list[str]:
        """The device types this factory may create."""
        return self._run(self._impl.types())

    def devices(self) -> list[DeviceInfo]:
        """The factory's devices and their state."""
        return self._run(self._impl.devices())

    def device(self, name: str) -> Device:
        """A proxy of the device called ``name``."""
        return _proxy(self._run(self._impl.device(name)), self._runner)

    def collector(self, name: str) -> Collector:
        """The collector called ``name``."""
        return Collector(self._run(self._impl.collector(name)), self._runner)

    def processor(self, name: str) -> Processor:
        """The processing device called ``name``."""
        return Processor(self._run(self._impl.processor(name)), self._runner)
