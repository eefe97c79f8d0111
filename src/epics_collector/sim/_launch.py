"""Start the simulated IOC as a child process (tests, demo) and stop it again."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType

from epics_collector.process import ManagedProcess
from epics_collector.sim._ioc import READY_LINE


class SimIoc:
    """The sim IOC in a child process, ready when it says so; ``with`` stops it."""

    def __init__(self, prefix: str, env: Mapping[str, str], timeout: float = 30.0) -> None:
        self.prefix = prefix
        self.timeout = timeout
        self.process = ManagedProcess("epics_collector.sim", ["--prefix", prefix], env=env)

    def start(self) -> SimIoc:
        """Start the IOC and wait until its records are up."""
        self.process.start()
        self.process.wait_ready(lambda: READY_LINE in self.process.output(), self.timeout)
        return self

    def stop(self) -> None:
        """Stop the IOC."""
        self.process.stop()

    def __enter__(self) -> SimIoc:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class PvaSource:
    """``sim.pva_source`` in a child process (counters posted at a rate); ``with`` stops it."""

    def __init__(
        self,
        prefix: str,
        env: Mapping[str, str],
        *,
        channels: int = 1,
        rate: float = 10.0,
        count: int = 0,
        length: int = 0,
        timeout: float = 30.0,
    ) -> None:
        self.prefix, self.timeout = prefix, timeout
        args = ["--prefix", prefix, "--channels", str(channels), "--rate", str(rate)]
        args += ["--count", str(count), "--length", str(length)]
        self.process = ManagedProcess("epics_collector.sim.pva_source", args, env=env)

    def names(self, channels: int) -> list[str]:
        """The counters' PV names."""
        return [f"{self.prefix}{i:04d}" for i in range(channels)]

    def start(self) -> PvaSource:
        """Start it and wait until it serves."""
        from epics_collector.sim.pva_source import READY

        self.process.start()
        self.process.wait_ready(lambda: READY in self.process.output(), self.timeout)
        return self

    def stop(self) -> None:
        """Stop it."""
        self.process.stop()

    def __enter__(self) -> PvaSource:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
