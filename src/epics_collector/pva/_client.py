"""A small typed wrapper of p4p's thread client, configured from a :class:`Network`."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self, cast

from p4p.client.thread import Context

from epics_collector.pva._network import Network


class Client:
    """Blocking PVA client for scripts, the CLI and tests; ``with`` closes it."""

    def __init__(self, network: Network, timeout: float = 5.0, *, raw: bool = False) -> None:
        """``raw``: values as p4p ``Value`` structures (no NT unwrapping)."""
        self.timeout = timeout
        self.context: Any = Context(
            "pva", conf=network.client_conf(), useenv=network.useenv, nt=False if raw else None
        )

    def get(self, name: str) -> Any:
        """The value of one PV (p4p's augmented type: carries ``.severity``, ``.timestamp``)."""
        return self.context.get(name, timeout=self.timeout)

    def get_many(self, names: Sequence[str]) -> list[Any]:
        """Values of several PVs; a PV that fails gives its exception instead of a value."""
        return cast(list[Any], self.context.get(list(names), timeout=self.timeout, throw=False))

    def put(self, name: str, value: Any) -> None:
        """Put and wait for the server to accept (raises with the server's error text)."""
        self.context.put(name, value, timeout=self.timeout)

    def close(self) -> None:
        """Close the connection."""
        self.context.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
