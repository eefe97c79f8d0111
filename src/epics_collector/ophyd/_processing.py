"""A processing device as an ophyd-async detector: outputs read like any detector's."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ophyd_async.core import (
    AsyncStatus,
    SignalR,
    SignalRW,
    StandardReadable,
    StandardReadableFormat,
    wait_for_value,
)
from ophyd_async.epics.core import PviDeviceConnector

from epics_collector.core import field_name


class ProcessingDevice(StandardReadable):
    """A processing device for bluesky, built from its ``P:PVI``.

    Outputs are hinted, parameters are configuration.

    ``trigger`` waits for the next run of the processor (a fresh output), so the device
    works as a detector in ``count`` and ``scan``. Every PV the device serves is a child
    found in its PVI at connect: each output as ``output_<name>``, each parameter
    as ``param_<name>``; :attr:`outputs` and :attr:`params` hold them by name (outputs as
    the device's Config names them, unless ``outputs`` are given).
    """

    enable: SignalRW[int]
    feedback_enable: SignalRW[int]
    count: SignalR[int]
    errors: SignalR[int]
    state: SignalR[str]
    message: SignalR[str]
    config_json: SignalR[str]

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
        super().__init__(name=name, connector=PviDeviceConnector(prefix))

    @property
    def runs(self) -> SignalR[int]:
        """Runs that produced outputs (``Count``; the name earlier versions used)."""
        return self.count

    async def connect(
        self, mock: Any = False, timeout: float = 10.0, force_reconnect: bool = False
    ) -> None:  # type: ignore[override]
        """Connect every PV in the device's PVI; sort outputs and parameters out."""
        await super().connect(mock=mock, timeout=timeout, force_reconnect=force_reconnect)
        if mock or self.outputs:
            return
        config = json.loads(await self.config_json.get_value())
        names = self._given_outputs or list(config["outputs"])
        self.outputs = {output: getattr(self, f"output_{field_name(output)}") for output in names}
        self.params = {
            param: getattr(self, f"param_{param}") for param in config["processor"]["params"]
        }
        self.add_readables(list(self.outputs.values()), StandardReadableFormat.HINTED_SIGNAL)
        self.add_readables(list(self.params.values()), StandardReadableFormat.CONFIG_SIGNAL)

    @AsyncStatus.wrap
    async def trigger(self) -> None:
        """Wait until the processor has run once more (a fresh output)."""
        before = await self.count.get_value()
        try:  # ophyd-async's monitor of Count: no polling
            await wait_for_value(self.count, lambda runs: runs > before, self.trigger_timeout)
        except TimeoutError:
            message = await self.message.get_value()
            raise TimeoutError(
                f"{self.prefix} no new output within {self.trigger_timeout:g} s ({message})"
            ) from None
