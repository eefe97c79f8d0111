"""``pid``: a PID controller with output limits, anti-windup and an output rate limit."""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import Field

from epics_collector.core import Finite
from epics_collector.processing._api import Inputs, Outputs, Params, Processor


class PidParams(Params):
    """Gains, target and limits; all writable live."""

    input: str = Field(default="", description="the measured input (default: the only one)")
    setpoint: Finite = Field(default=0.0, description="the target value of the input")
    kp: Finite = Field(default=1.0)
    ki: Finite = Field(default=0.0, description="per second")
    kd: Finite = Field(default=0.0, description="seconds")
    low: Finite = Field(default=-1e300, description="output lower limit")
    high: Finite = Field(default=1e300, description="output upper limit")
    max_rate: float = Field(
        default=0.0, ge=0, le=1e300, description="output change per second; 0: none"
    )
    initial: Finite = Field(default=0.0, description="output before the first run")


class Pid(Processor[PidParams]):
    """``output`` = kp*e + ki*integral(e) + kd*de/dt, e = setpoint - input; ``error``.

    Time steps are the wall-clock times between runs (``clock``), so a loop triggered by
    a period keeps integrating while the measured PV does not change (a PV that posts
    only changes keeps its old timestamp). The integral stops growing while the output is
    held at a limit (anti-windup).
    """

    input_params = ("input",)

    params_model = PidParams
    default_outputs = {"output": "float64", "error": "float64"}

    def __init__(self, params: PidParams) -> None:
        super().__init__(params)
        self.clock: Callable[[], float] = time.time

    def setup(self) -> None:
        """Reset the state."""
        self._integral = 0.0
        self._last: tuple[float, float] | None = None  # time, error
        self._output = self.params.initial

    def process(self, inputs: Inputs) -> Outputs:
        """One control step."""
        p = self.params
        source = inputs[p.input] if p.input else next(iter(inputs.values()))
        error = p.setpoint - float(source.value)
        now = self.clock()
        dt = 0.0 if self._last is None else max(0.0, now - self._last[0])
        derivative = 0.0 if self._last is None or dt == 0 else (error - self._last[1]) / dt
        integral = self._integral + error * dt
        raw = p.kp * error + p.ki * integral + p.kd * derivative
        output = min(p.high, max(p.low, raw))
        if output == raw:  # not saturated: keep integrating (anti-windup)
            self._integral = integral
        if p.max_rate > 0 and dt > 0:
            step = p.max_rate * dt
            output = min(self._output + step, max(self._output - step, output))
        self._output, self._last = output, (now, error)
        return {"output": output, "error": error}
