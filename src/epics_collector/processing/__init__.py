"""The processing device and the processor API (what users write)."""

from epics_collector.processing._api import (
    Input,
    Inputs,
    Outputs,
    Params,
    Processor,
    UnknownProcessorError,
    load_processor,
    processor_names,
)
from epics_collector.processing._config import ProcessingConfig
from epics_collector.processing._device import Processing, ProcessingStates

__all__ = [
    "Input",
    "Inputs",
    "Outputs",
    "Params",
    "Processing",
    "ProcessingConfig",
    "ProcessingStates",
    "Processor",
    "UnknownProcessorError",
    "load_processor",
    "processor_names",
]
