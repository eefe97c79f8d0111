"""A processing device's parameters: one ``Param:<name>`` PV per processor parameter.

:class:`ParamPvs` owns them: it makes each PV from the processor's parameter model,
checks a put the way the processor would (its model, then its own ``check``) before the
worker gets the new values, and serves structured parameters as JSON text.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from epics_collector.core import (
    AttrRW,
    Bool,
    DataType,
    Enum,
    Float,
    Int,
    Operation,
    String,
    describe_validation_error,
)
from epics_collector.processing._api import Processor
from epics_collector.processing._names import PARAM


def param_datatype(annotation: Any) -> DataType:
    """The PV datatype of a processor parameter (others are served as JSON text)."""
    if annotation is bool:
        return Bool()
    if annotation is int:
        return Int()
    if annotation is float:
        return Float(precision=6)
    if annotation is str:
        return String(max_length=2000)
    if typing.get_origin(annotation) is typing.Literal:
        return Enum(choices=[str(a) for a in typing.get_args(annotation)])
    return String(max_length=2000)


class ParamPvs:
    """The parameter PVs of a processor; a put is checked before the worker sees it."""

    def __init__(
        self,
        processor: Processor[Any],
        inputs: Collection[str],
        data_dir: Path | None,
        access: Operation,
        apply: Callable[[dict[str, Any]], None],
        report: Callable[[str], None],
    ) -> None:
        """Make the PVs; ``apply(values)`` hands checked values on (to the worker).

        ``access`` is what a put is (feedback, when the outputs go to other PVs).
        """
        self.processor, self._inputs, self._data_dir = processor, set(inputs), data_dir
        self._apply, self._report = apply, report
        self.attrs: dict[str, AttrRW[Any]] = {}
        for name, field in type(processor.params).model_fields.items():
            attr: AttrRW[Any] = AttrRW(
                param_datatype(field.annotation),
                name=f"{PARAM}{name}",
                field=f"param_{name}",
                description=field.description or f"Parameter {name}",
                access=access,
            )
            attr.put_handler = self._putter(name)
            self.attrs[name] = attr
        self.show()

    def show(self) -> None:
        """Set every PV to the processor's current value."""
        values = self.processor.params.model_dump(mode="json")
        for name, attr in self.attrs.items():
            value = values[name]
            if isinstance(attr.datatype, String) and not isinstance(value, str):
                value = json.dumps(value)  # structured params are served as JSON text
            attr.set(value)

    def _putter(self, name: str) -> Any:
        async def put(_owner: Any, value: Any) -> None:
            await self._put(name, value)

        return put

    async def _put(self, name: str, value: Any) -> None:
        model = type(self.processor.params)
        data = self.processor.params.model_dump()
        structured = model.model_fields[name].annotation is not str
        if isinstance(self.attrs[name].datatype, String) and structured:
            value = json.loads(value)
        try:
            params = model.model_validate({**data, name: value})
            candidate = type(self.processor)(params)
            candidate.data_dir = self._data_dir
            candidate.check(self._inputs)
        except ValidationError as error:
            raise ValueError(describe_validation_error(error)) from None
        self.processor.params = params
        self._apply(params.model_dump(mode="json"))
        self._report(f"{PARAM}{name} = {value!r}")
