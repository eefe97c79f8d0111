"""The processor API: what a user writes. No PVAccess here, only numpy and metadata.

A processor is a class with a pydantic ``Params`` model and a ``process`` method that
gets the newest value of every input and returns a dict of outputs::

    class Scale(Processor[ScaleParams]):
        params_model = ScaleParams

        def process(self, inputs: Inputs) -> Outputs:
            return {"result": inputs["a"].value * self.params.factor}

``setup``/``teardown`` run when the device starts and stops. ``self.params`` is replaced
(validated) when a client writes a ``Param:<name>`` PV.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from epics_collector.core import UnknownPluginError, load_plugin, plugin_names

GROUP = "epics_collector.processors"


class Params(BaseModel):
    """Base of processor parameter models: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


P = TypeVar("P", bound=Params)


@dataclass(frozen=True)
class Input:
    """The newest value of one input: a float, a string or a numpy array (images 2-D).

    Arrays are read-only views of the received data (no copy per update): a processor
    that wants to write into one copies it first.
    """

    value: Any
    timestamp: float
    severity: int = 0
    units: str = ""

    @property
    def array(self) -> np.ndarray:
        """The value as a numpy array."""
        return np.asarray(self.value)


Inputs = Mapping[str, Input]
Outputs = Mapping[str, Any]


class Processor(ABC, Generic[P]):
    """Base class of processors (see the module text)."""

    params_model: ClassVar[type[Params]] = Params
    #: Outputs produced when the device's config declares none: name -> dtype.
    default_outputs: ClassVar[Mapping[str, str]] = {}
    #: Parameters that name an input: checked against the device's inputs.
    input_params: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: P) -> None:
        self.params = params
        #: The device's data directory (set by the device; files are read only from here).
        self.data_dir: Path | None = None

    def check(self, input_names: set[str]) -> None:
        """Refuse a configuration (``ValueError``), e.g. names the inputs do not have.

        The base checks the parameters named in ``input_params`` (empty: the default).
        """
        for field_name in self.input_params:
            name = getattr(self.params, field_name)
            if name and name not in input_names:
                raise ValueError(
                    f"{field_name} {name!r} is not one of the inputs {sorted(input_names)}"
                )

    def setup(self) -> None:
        """Called once before the first ``process`` (load a model, allocate buffers)."""

    def teardown(self) -> None:
        """Called once when the device stops."""

    @abstractmethod
    def process(self, inputs: Inputs) -> Outputs:
        """Compute the outputs from the inputs' newest values."""


class UnknownProcessorError(UnknownPluginError):
    """No processor is registered under that name."""


def processor_names() -> list[str]:
    """Registered processor names, sorted."""
    return plugin_names(GROUP)


def load_processor(name: str) -> type[Processor[Any]]:
    """The processor class registered as ``name``."""
    try:
        return load_plugin(GROUP, name, Processor, "processor")
    except UnknownPluginError as error:
        raise UnknownProcessorError(str(error)) from None
