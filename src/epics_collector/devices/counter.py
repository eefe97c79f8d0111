"""The smallest useful device: counts while running. The docs' first example."""

from enum import StrEnum

from pydantic import Field

from epics_collector.core import AttrR, AttrRW, Device, DeviceConfig, Int, command, scan


class CounterConfig(DeviceConfig):
    """Configuration of a :class:`Counter`."""

    step: int = Field(1, ge=1, le=1000, description="initial Step (as Step's limits: 1..1000)")


class CounterStates(StrEnum):
    """States of a counter."""

    IDLE = "Idle"
    RUNNING = "Running"
    FAULT = "Fault"


class Counter(Device[CounterConfig]):
    """Adds ``step`` to ``Count`` ten times a second while running."""

    config_model = CounterConfig
    States = CounterStates

    count = AttrR(Int(), description="Counts so far")
    step = AttrRW(Int(low=1, high=1000), description="Added on each tick")

    async def on_start(self) -> None:
        """Take the initial step from the configuration; nothing counted yet is a 0."""
        self.step.set(self.config.step)
        self.count.set(0)  # defined, not 0 INVALID, before the first tick

    @command(name="Start")
    async def start_counting(self) -> None:
        """Start counting."""
        self.set_state(CounterStates.RUNNING)

    @command(name="Stop")
    async def stop_counting(self) -> None:
        """Stop counting."""
        self.set_state(CounterStates.IDLE)

    @scan(0.1)
    async def tick(self) -> None:
        """Count one step while running."""
        if self.state.value == CounterStates.RUNNING:
            self.count.set(self.count.value + self.step.value)
