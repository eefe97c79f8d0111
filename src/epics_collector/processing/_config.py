"""Configuration of a processing device (DESIGN.md "Configuration")."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from epics_collector.core import DeviceConfig, Finite, describe_validation_error, split_url
from epics_collector.processing._api import Params, Processor, load_processor
from epics_collector.processing.processors._calc import CONSTANTS, FUNCTIONS

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")
OUTPUT_TYPES = ("float64", "int64", "string", "float64[]", "image")


class OutputConfig(BaseModel):
    """One output PV."""

    model_config = ConfigDict(extra="forbid")

    dtype: Literal["float64", "int64", "string", "float64[]", "image"] = "float64"
    units: str = ""
    precision: int = Field(default=4, ge=0, le=17)


class Period(BaseModel):
    """Run every ``period`` seconds with the inputs' newest values."""

    model_config = ConfigDict(extra="forbid")

    period: float = Field(ge=0.001, le=86400, description="seconds (1 ms .. 1 day)")


class Distribute(BaseModel):
    """Take a share of the inputs' updates, so N devices can split one fast stream."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, description="this device's share, 0 .. count-1")
    count: int = Field(ge=1, le=1000, description="how many devices share the stream")

    @model_validator(mode="after")
    def _index_in_range(self) -> Distribute:
        if self.index >= self.count:
            raise ValueError(f"distribute.index ({self.index}) must be below count ({self.count})")
        return self


class ProcessorConfig(BaseModel):
    """A registered processor and its parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)


class Feedback(BaseModel):
    """Write an output to an external PV (closed loop), only while FeedbackEnable is 1."""

    model_config = ConfigDict(extra="forbid")

    output: str
    target: str = Field(min_length=1, description="pva://NAME, ca://NAME or NAME")
    low: Finite
    high: Finite
    max_step: float | None = Field(
        default=None, gt=0, le=1e300, description="largest change per write"
    )
    max_age: float = Field(
        default=5.0, gt=0, le=86400, description="inputs older than this are stale"
    )

    @model_validator(mode="after")
    def _limits(self) -> Feedback:
        split_url(self.target)
        if not self.low <= self.high:
            raise ValueError(f"feedback low ({self.low}) must not exceed high ({self.high})")
        return self


class ProcessingConfig(DeviceConfig):
    """Inputs, a trigger, a processor, outputs and optional feedback."""

    inputs: dict[str, str] = Field(min_length=1, description="name -> PV (pva://, ca:// or bare)")
    trigger: Literal["any", "all"] | str | Period = Field(
        default="any", description="any | all | <input name> | {period: s}"
    )
    processor: ProcessorConfig
    outputs: dict[str, OutputConfig] = Field(
        default_factory=dict, description="default: the processor's outputs"
    )
    feedback: list[Feedback] = Field(default_factory=list)
    timeout: float = Field(
        default=5.0, gt=0, le=3600, description="a run longer than this is an error"
    )
    max_errors: int = Field(default=10, ge=1, description="errors in a row before Fault")
    distribute: Distribute | None = Field(
        default=None,
        description=(
            "{index: i, count: N}: process only the updates whose number (NTNDArray "
            "uniqueId, else a hash of the timestamp) modulo N is i"
        ),
    )
    enable: bool = Field(default=True, description="run from the start")

    @field_validator("inputs")
    @classmethod
    def _input_names(cls, inputs: dict[str, str]) -> dict[str, str]:
        for name, pv in inputs.items():
            if not _NAME.match(name) or name in CONSTANTS or name in FUNCTIONS:
                raise ValueError(
                    f"input name {name!r}: letters, digits, _; not a function or constant"
                )
            split_url(pv)
        return inputs

    def make_processor(self, data_dir: Path | None = None) -> Processor[Any]:
        """Build the processor with validated params (raises ``ValueError`` naming fields).

        With ``data_dir`` the processor also checks the files it would read there.
        """
        cls = load_processor(self.processor.name)
        try:
            params: Params = cls.params_model.model_validate(self.processor.params)
        except ValidationError as error:
            raise ValueError(f"processor.params: {describe_validation_error(error)}") from None
        processor = cls(params)
        processor.data_dir = data_dir
        processor.check(set(self.inputs))
        return processor

    @model_validator(mode="after")
    def _consistent(self) -> ProcessingConfig:
        try:
            processor = self.make_processor()
        except LookupError as error:
            raise ValueError(f"processor: {error}") from None
        self.processor.params = processor.params.model_dump(mode="json")  # defaults shown
        if isinstance(self.trigger, str) and self.trigger not in ("any", "all"):
            if self.trigger not in self.inputs:
                raise ValueError(f"trigger {self.trigger!r} is not any, all or an input name")
        if not self.outputs:
            self.outputs = {
                name: OutputConfig(dtype=dtype)  # type: ignore[arg-type]
                for name, dtype in processor.default_outputs.items()
            }
        for name in self.outputs:
            if not _NAME.match(name):
                raise ValueError(f"output name {name!r}: letters, digits, _")
        for entry in self.feedback:
            if entry.output not in self.outputs:
                raise ValueError(f"feedback output {entry.output!r} is not an output")
        return self
