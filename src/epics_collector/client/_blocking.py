"""What the blocking client adds by hand: a private event loop and the overrides.

Every other blocking method is generated from its asynchronous namesake into
``_sync.py`` by ``tools/sync_client.py`` (a test fails when it is stale). Written here
are only the methods whose blocking form differs: ``connect``/``local`` (they make the
loop), ``close`` and the context managers (they stop it).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from pathlib import Path
from typing import Any, ClassVar, Self, TypeVar

from epics_collector.client._devices import AsyncCollector, AsyncDevice, AsyncProcessor
from epics_collector.client._errors import ClientError
from epics_collector.client._factory import AsyncFactory
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


class _Blocking:
    """A blocking proxy of an asynchronous object, run on a :class:`LoopThread`."""

    def __init__(self, impl: Any, runner: LoopThread, *, owned: bool = False) -> None:
        self._impl, self._runner, self._run = impl, runner, runner.run
        self._owned = owned  # the loop is this proxy's own: close stops it
        self.prefix: str = impl.prefix

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.prefix!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close what this proxy opened (a proxy handed out by a factory: nothing)."""
        if self._owned and not self._runner.loop.is_closed():
            self._run(self._impl.close())
            self._runner.stop()

    def _wrap(self, impl: Any) -> Any:
        """The blocking proxy of an asynchronous device proxy, on the same loop."""
        from epics_collector.client import _sync  # the generated classes

        if isinstance(impl, AsyncCollector):
            return _sync.Collector(impl, self._runner)
        if isinstance(impl, AsyncProcessor):
            return _sync.Processor(impl, self._runner)
        return _sync.Device(impl, self._runner)


class BlockingDevice(_Blocking):
    """The hand-written part of a blocking device proxy (see :class:`AsyncDevice`)."""

    _async_type: ClassVar[type[AsyncDevice]] = AsyncDevice

    @classmethod
    def connect(cls, prefix: str, *, network: Network | None = None, timeout: float = 5.0) -> Self:
        """A proxy of the device served under ``prefix`` (no factory needed).

        ``with`` (or :meth:`close`) closes its connection and its loop.
        """
        runner = LoopThread()
        try:
            impl = runner.run(cls._async_type.connect(prefix, network=network, timeout=timeout))
        except BaseException:
            runner.stop()
            raise
        return cls(impl, runner, owned=True)


class BlockingFactory(_Blocking):
    """The hand-written part of the blocking factory client (see :class:`AsyncFactory`)."""

    @classmethod
    def connect(
        cls,
        prefix: str,
        *,
        network: Network | None = None,
        timeout: float = 5.0,
        lifecycle_timeout: float | None = None,
    ) -> Self:
        """A running factory under ``prefix``; ``with`` (or :meth:`close`) closes it.

        The timeouts are ``AsyncFactory.connect``'s.
        """
        runner = LoopThread()
        try:
            impl = runner.run(
                AsyncFactory.connect(
                    prefix, network=network, timeout=timeout, lifecycle_timeout=lifecycle_timeout
                )
            )
        except BaseException:
            runner.stop()
            raise
        return cls(impl, runner, owned=True)

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
    ) -> Self:
        """Start a fresh factory in a child process; :meth:`close` stops it.

        As ``AsyncFactory.local``: ``restore=True`` brings back the devices an
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
        return cls(impl, runner, owned=True)
