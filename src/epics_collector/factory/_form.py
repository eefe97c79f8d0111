"""A factory's create form: NewType, NewName, NewConfig, then put 1 to CreateNew.

For operators on a screen (Phoebus, the dashboard) rather than a script: the form's
fields are PVs, and CreateNew creates what they describe exactly as the Create RPC
would, with the same checks and the same access right.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from epics_collector.core import (
    MAX_CONFIG_CHARS,
    AttrRW,
    Caller,
    Enum,
    Operation,
    Part,
    Severity,
    String,
    command,
    current_caller,
)
from epics_collector.factory._names import FactoryPv

#: Creates a device for a caller: (caller, type=, name=, config=) -> its prefix.
Create = Callable[..., Awaitable[str]]


class CreateForm(Part):
    """The create form's fields, and CreateNew (the fields are added by the factory)."""

    def __init__(
        self, types: Sequence[str], create: Create, report: Callable[[str, Severity], None]
    ) -> None:
        """``types`` are the choices of NewType; ``create`` creates (as Create does)."""
        self._create, self._report = create, report
        self.new_type: AttrRW[Any] = AttrRW(
            Enum(choices=list(types) or ["(none)"]),
            name=FactoryPv.NEW_TYPE,
            description="Create form: device type",
            access=Operation.FACTORY,
        )
        self.new_name: AttrRW[Any] = AttrRW(
            String(max_length=40),
            name=FactoryPv.NEW_NAME,
            description="Create form: name",
            access=Operation.FACTORY,
        )
        self.new_config: AttrRW[Any] = AttrRW(
            String(max_length=MAX_CONFIG_CHARS),
            name=FactoryPv.NEW_CONFIG,
            description="Create form: configuration (JSON or YAML)",
            access=Operation.FACTORY,
        )
        self.new_type.set(self.new_type.datatype.initial)
        self.new_name.set("")
        self.new_config.set("")

    @property
    def fields(self) -> list[AttrRW[Any]]:
        """The form's field PVs (their choices depend on the factory's types)."""
        return [self.new_type, self.new_name, self.new_config]

    @command(name=FactoryPv.CREATE_NEW, access=Operation.FACTORY)
    async def create_from_form(self) -> None:
        """Create the device the form describes (put 1), as Create would; see Message."""
        caller: Caller = current_caller.get()
        prefix = await self._create(
            caller,
            type=self.new_type.value,
            name=self.new_name.value,
            config=self.new_config.value,
        )
        self._report(f"created {self.new_name.value} at {prefix}", Severity.NO_ALARM)
