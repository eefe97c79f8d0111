"""One asyncio PVA client connection: gets, puts, RPCs and monitors as plain Python values.

Works on raw p4p Values (``nt=False``) and decodes them here, so every caller sees the
same types: numbers, strings, choice names for enums, dicts of numpy arrays for tables.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from p4p import Value
from p4p.client.asyncio import Context, Disconnected, RemoteError
from p4p.nt import NTURI

from epics_collector.client._errors import NoConnectionError, refused
from epics_collector.pva import Network, decode


class Connection:
    """An asyncio p4p client with timeouts and errors the client API promises."""

    def __init__(self, network: Network | None = None, timeout: float = 5.0) -> None:
        network = network or Network.from_environment()
        self.timeout = timeout
        self._ctx = Context("pva", conf=network.client_conf(), useenv=network.useenv, nt=False)
        self.owns_context = True  # False for a view (with_timeout): its owner closes it

    def with_timeout(self, timeout: float) -> Connection:
        """This connection's context (no new one) with another default timeout.

        Closing the result leaves the context open: its owner closes it.
        """
        view = copy.copy(self)
        view.timeout, view.owns_context = timeout, False
        return view

    async def _wait(self, name: str, operation: Any, timeout: float | None) -> Any:
        limit = self.timeout if timeout is None else timeout
        try:
            return await asyncio.wait_for(operation, limit)
        except TimeoutError:
            raise NoConnectionError(f"{name}: no answer within {limit:g} s") from None
        except RemoteError as error:
            raise refused(name, str(error)) from None
        except Disconnected:
            raise NoConnectionError(f"{name}: disconnected") from None

    async def get_value(self, name: str, timeout: float | None = None) -> Value:
        """The raw Value of ``name``."""
        return await self._wait(name, self._ctx.get(name), timeout)

    async def get(self, name: str, timeout: float | None = None) -> Any:
        """The decoded value of ``name``."""
        return decode(await self.get_value(name, timeout))

    async def put(self, name: str, value: Any, timeout: float | None = None) -> None:
        """Put and wait until the server accepted it."""
        await self._wait(name, self._ctx.put(name, value), timeout)

    async def call(
        self, name: str, arguments: Mapping[str, str], timeout: float | None = None
    ) -> Any:
        """An RPC with string arguments (as ``pvcall`` sends them); the decoded result."""
        uri = NTURI([(key, "s") for key in arguments])
        request = uri.wrap(name, kws=dict(arguments))
        return decode(await self._wait(name, self._ctx.rpc(name, request), timeout))

    async def monitor_values(
        self,
        name: str,
        queue_size: int = 1000,
        on_disconnect: Callable[[], None] | None = None,
    ) -> AsyncIterator[Value]:
        """Each update of ``name`` as a raw Value, until the caller stops iterating.

        A disconnect calls ``on_disconnect`` (if given); the monitor resumes by itself
        when the server is back.
        """
        queue: asyncio.Queue[Any] = asyncio.Queue()

        async def on_update(value: Any) -> None:
            await queue.put(value)

        subscription = self._ctx.monitor(
            name,
            on_update,
            request=f"record[queueSize={queue_size}]field()",
            notify_disconnect=True,
        )
        try:
            while True:
                value = await queue.get()
                if isinstance(value, Exception):
                    if on_disconnect is not None:
                        on_disconnect()
                    continue
                yield value
        finally:
            subscription.close()

    async def wait_for_value(
        self, name: str, predicate: Callable[[Any], bool], timeout: float | None = None
    ) -> Any:
        """The first decoded value of ``name`` for which ``predicate`` holds (a monitor).

        The monitor's first update is the current value, so a value that holds already
        returns at once; no polling. :class:`NoConnectionError` after ``timeout``
        seconds, naming the last value seen (or that none came).
        """
        limit = self.timeout if timeout is None else timeout
        seen: list[Any] = []

        async def first() -> Any:
            async for value in self.monitor(name, queue_size=4):
                seen[:] = [value]
                if predicate(value):
                    return value
            raise NoConnectionError(f"{name}: the monitor ended")  # (it never does)

        try:
            return await asyncio.wait_for(first(), limit)
        except TimeoutError:
            last = f"still {seen[0]!r}" if seen else "no value came"
            raise NoConnectionError(f"{name}: {last} after {limit:g} s") from None

    async def monitor(self, name: str, queue_size: int = 1000) -> AsyncIterator[Any]:
        """Each update of ``name``, decoded, until the caller stops iterating."""
        async for value in self.monitor_values(name, queue_size):
            yield decode(value)

    async def monitor_stamped(
        self, name: str, queue_size: int = 1000
    ) -> AsyncIterator[tuple[float, Any]]:
        """Each update of ``name`` as (its timestamp in POSIX seconds, decoded value)."""
        async for value in self.monitor_values(name, queue_size):
            stamp = value["timeStamp.secondsPastEpoch"] + value["timeStamp.nanoseconds"] * 1e-9
            yield stamp, decode(value)

    def close(self) -> None:
        """Close the client context (if this connection made it)."""
        if self.owns_context:
            self._ctx.close()
