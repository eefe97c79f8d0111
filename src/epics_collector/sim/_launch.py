"""Start the simulated sources (the IOC, a p4p counter server) as child processes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from epics_collector.process import ReadyProcess
from epics_collector.sim._ioc import READY_LINE
from epics_collector.sim.pva_source import READY


class SimIoc(ReadyProcess):
    """The sim IOC in a child process, ready when its records are up; ``with`` stops it."""

    def __init__(
        self,
        prefix: str,
        env: Mapping[str, str],
        timeout: float = 30.0,
        launcher: Sequence[str] = (),
    ) -> None:
        self.prefix = prefix
        args = ["--prefix", prefix]
        super().__init__(
            "epics_collector.sim", args, READY_LINE, env=env, timeout=timeout, launcher=launcher
        )


class PvaSource(ReadyProcess):
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
        image: tuple[int, int] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.prefix = prefix
        args = ["--prefix", prefix, "--channels", str(channels), "--rate", str(rate)]
        args += ["--count", str(count), "--length", str(length)]
        if image is not None:
            args += ["--image", f"{image[0]}x{image[1]}"]
        super().__init__("epics_collector.sim.pva_source", args, READY, env=env, timeout=timeout)

    def names(self, channels: int) -> list[str]:
        """The counters' PV names."""
        return [f"{self.prefix}{i:04d}" for i in range(channels)]
