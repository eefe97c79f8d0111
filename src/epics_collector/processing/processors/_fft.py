"""``fft``: amplitude spectrum of an array input and the frequency of its peak."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from epics_collector.processing._api import Inputs, Outputs, Params, Processor


class FftParams(Params):
    """Sample spacing and window."""

    input: str = Field(default="", description="array input (default: the only one)")
    sample_rate: float = Field(default=1.0, gt=0, le=1e15, description="samples per second")
    window: bool = Field(default=True, description="apply a Hann window")


class Fft(Processor[FftParams]):
    """``spectrum`` (amplitude), ``frequencies``, ``peak_frequency``, ``peak_amplitude``."""

    input_params = ("input",)

    params_model = FftParams
    default_outputs = {
        "spectrum": "float64[]",
        "frequencies": "float64[]",
        "peak_frequency": "float64",
        "peak_amplitude": "float64",
    }

    def process(self, inputs: Inputs) -> Outputs:
        """Rfft of the (mean-removed, windowed) signal; the peak excludes DC."""
        p = self.params
        source = inputs[p.input] if p.input else next(iter(inputs.values()))
        signal = np.asarray(source.value, dtype=np.float64).ravel()
        if signal.size < 4:
            raise ValueError("fft needs at least 4 samples")
        signal = signal - signal.mean()
        weights = np.hanning(signal.size) if p.window else np.ones(signal.size)
        spectrum = np.abs(np.fft.rfft(signal * weights)) * 2 / weights.sum()
        frequencies = np.fft.rfftfreq(signal.size, 1.0 / p.sample_rate)
        peak = int(np.argmax(spectrum[1:])) + 1
        return {
            "spectrum": spectrum,
            "frequencies": frequencies,
            "peak_frequency": float(frequencies[peak]),
            "peak_amplitude": float(spectrum[peak]),
        }
