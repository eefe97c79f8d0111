"""A processing device as an ophyd-async detector: outputs read like any detector's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from ophyd_async.core import (
    AsyncStatus,
    SignalR,
    SignalRW,
    StandardReadable,
    StandardReadableFormat,
    wait_for_value,
)
from ophyd_async.epics.core import EpicsDevice, PvSuffix, epics_signal_r, epics_signal_rw

from epics_collector.client import AsyncProcessor, Connection

_PARAM_TYPES: dict[type, type] = {bool: bool, int: int, float: float, str: str}


class ProcessingDevice(StandardReadable, EpicsDevice):
    """A processing device (PV contract): outputs hinted, parameters as configuration.

    ``trigger`` waits for the next run of the processor (a fresh output), so the device
    works as a detector in ``count`` and ``scan``. Outputs and parameters are read from
    the device's Config at connect (unless ``outputs`` are given).
    """

    enable: Annotated[SignalRW[int], PvSuffix("Enable")]
    feedback_enable: Annotated[SignalRW[int], PvSuffix("FeedbackEnable")]
    runs: Annotated[SignalR[int], PvSuffix("Count")]
    errors: Annotated[SignalR[int], PvSuffix("Errors")]
    state: Annotated[SignalR[str], PvSuffix("State")]
    message: Annotated[SignalR[str], PvSuffix("Message")]

    def __init__(
        self,
        prefix: str,
        *,
        outputs: Sequence[str] | None = None,
        trigger_timeout: float = 10.0,
        name: str = "",
    ) -> None:
        self.prefix, self.trigger_timeout = prefix, trigger_timeout
        self._given_outputs = list(outputs) if outputs is not None else None
        self.outputs: dict[str, SignalR[Any]] = {}
        self.params: dict[str, SignalRW[Any]] = {}
        self._discovered = False
        super().__init__(f"pva://{prefix}", name=name)

    async def connect(
        self, mock: Any = False, timeout: float = 10.0, force_reconnect: bool = False
    ) -> None:  # type: ignore[override]
        """Create a signal per output and per parameter, then connect them all."""
        if not mock and not self._discovered:
            client = AsyncProcessor(Connection(timeout=timeout), self.prefix)
            try:
                config = await client.config()
            finally:
                client.connection.close()
            names = self._given_outputs or list(config["outputs"])
            for output in names:
                dtype = config["outputs"].get(output, {}).get("dtype", "float64")
                datatype: Any = float if dtype == "float64" else Any
                signal = epics_signal_r(datatype, f"pva://{self.prefix}{output}")
                setattr(self, f"output_{output}", signal)
                self.outputs[output] = signal
            for param, value in config["processor"]["params"].items():
                datatype = _PARAM_TYPES.get(type(value), str)
                signal_rw = epics_signal_rw(datatype, f"pva://{self.prefix}Param:{param}")
                setattr(self, f"param_{param}", signal_rw)
                self.params[param] = signal_rw
            self.add_readables(list(self.outputs.values()), StandardReadableFormat.HINTED_SIGNAL)
            self.add_readables(list(self.params.values()), StandardReadableFormat.CONFIG_SIGNAL)
            self._discovered = True
            self.set_name(self.name)
        await super().connect(mock=mock, timeout=timeout, force_reconnect=force_reconnect)

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Wait until the processor has run once more (a fresh output)."""
        before = await self.runs.get_value()
        try:  # ophyd-async's monitor of Count: no polling
            await wait_for_value(self.runs, lambda runs: runs > before, self.trigger_timeout)
        except TimeoutError:
            message = await self.message.get_value()
            raise TimeoutError(
                f"{self.prefix}: no new output within {self.trigger_timeout:g} s ({message})"
            ) from None
