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
from epics_collector.processing._feedback import FeedbackWriters
from epics_collector.processing._names import PARAM, ProcessingPv
from epics_collector.processing._outputs import OutputPvs
from epics_collector.processing._runner import Runner

__all__ = [
    "PARAM",
    "ProcessingPv",
    "FeedbackWriters",
    "Input",
    "Inputs",
    "OutputPvs",
    "Outputs",
    "Params",
    "Processing",
    "ProcessingConfig",
    "ProcessingStates",
    "Processor",
    "Runner",
    "UnknownProcessorError",
    "load_processor",
    "processor_names",
]
