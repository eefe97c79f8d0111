"""``fit``: least-squares fits (scipy) of an array input, with parameter errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import Field
from scipy.optimize import curve_fit

from epics_collector.processing._api import Inputs, Outputs, Params, Processor


def _gaussian(x: Any, amplitude: float, center: float, sigma: float, offset: float) -> Any:
    return amplitude * np.exp(-((x - center) ** 2) / (2 * sigma**2)) + offset


def _lorentzian(x: Any, amplitude: float, center: float, gamma: float, offset: float) -> Any:
    return amplitude * gamma**2 / ((x - center) ** 2 + gamma**2) + offset


PEAKS: dict[str, tuple[Callable[..., Any], tuple[str, ...]]] = {
    "gaussian": (_gaussian, ("amplitude", "center", "sigma", "offset")),
    "lorentzian": (_lorentzian, ("amplitude", "center", "gamma", "offset")),
}


class FitParams(Params):
    """Model, and which inputs hold y (and x)."""

    model: Literal["linear", "polynomial", "gaussian", "lorentzian"] = "gaussian"
    degree: int = Field(default=2, ge=1, le=10, description="polynomial degree")
    y: str = Field(default="", description="y input (default: the only one)")
    x: str = Field(default="", description="x input (default: 0, 1, 2, ...)")


class Fit(Processor[FitParams]):
    """Outputs ``<param>`` and ``<param>_error`` per model parameter, ``chi2`` (reduced) and ``r2``.

    Parameters: linear ``slope``, ``intercept``; polynomial ``c0`` .. ``c<degree>`` (``c0``
    the constant); gaussian ``amplitude``, ``center``, ``sigma``, ``offset``; lorentzian
    ``amplitude``, ``center``, ``gamma``, ``offset``.
    """

    input_params = ("y", "x")

    params_model = FitParams
    default_outputs = {
        name: "float64"
        for base in ("amplitude", "center", "sigma", "offset")
        for name in (base, base + "_error")
    } | {"chi2": "float64", "r2": "float64"}

    def process(self, inputs: Inputs) -> Outputs:
        """Fit and report."""
        p = self.params
        y_input = inputs[p.y] if p.y else next(iter(inputs.values()))
        y = np.asarray(y_input.value, dtype=np.float64).ravel()
        x = (
            np.asarray(inputs[p.x].value, dtype=np.float64).ravel()
            if p.x
            else np.arange(y.size, dtype=np.float64)
        )
        if x.shape != y.shape:
            raise ValueError(f"x has {x.size} points, y {y.size}")
        if p.model in PEAKS:
            function, names = PEAKS[p.model]
            guess = [np.ptp(y), x[np.argmax(y)], (x[-1] - x[0]) / 10 or 1.0, np.min(y)]
            values, covariance = curve_fit(function, x, y, p0=guess, maxfev=5000)
            fitted = function(x, *values)
        else:
            degree = 1 if p.model == "linear" else p.degree
            coefficients, covariance = np.polyfit(x, y, degree, cov=True)
            values = coefficients[::-1]  # c0 first
            covariance = covariance[::-1, ::-1]
            names = (
                ("intercept", "slope")
                if p.model == "linear"
                else tuple(f"c{i}" for i in range(degree + 1))
            )
            fitted = np.polyval(coefficients, x)
        errors = np.sqrt(np.diag(covariance))
        residual = y - fitted
        dof = max(1, y.size - len(values))
        total = float(np.sum((y - y.mean()) ** 2))
        out: dict[str, float] = {}
        for name, value, error in zip(names, values, errors, strict=True):
            out[name], out[name + "_error"] = float(value), float(error)
        out["chi2"] = float(np.sum(residual**2) / dof)
        out["r2"] = 1.0 - float(np.sum(residual**2)) / total if total > 0 else 1.0
        return out
