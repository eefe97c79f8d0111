"""``roi``: statistics and centroid of a rectangle of an image input."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from epics_collector.core import Finite
from epics_collector.processing._api import Inputs, Outputs, Params, Processor


class RoiParams(Params):
    """The rectangle (live): columns ``x``..``x+width``, rows ``y``..``y+height``."""

    input: str = Field(default="", description="image input (default: the only input)")
    x: int = Field(default=0, ge=0)
    y: int = Field(default=0, ge=0)
    width: int = Field(default=0, ge=0, description="0: to the right edge")
    height: int = Field(default=0, ge=0, description="0: to the bottom edge")
    shape: tuple[int, int] | None = Field(
        default=None, description="[rows, columns] of a 1-D source (e.g. a waveform record)"
    )
    background: Finite = Field(default=0.0, description="subtracted before the centroid")


class Roi(Processor[RoiParams]):
    """sum, mean, max, centroid (x: column, y: row, in full-image pixels), sigma x/y."""

    input_params = ("input",)

    params_model = RoiParams
    default_outputs = dict.fromkeys(
        ("sum", "mean", "max", "centroid_x", "centroid_y", "sigma_x", "sigma_y"), "float64"
    )

    def process(self, inputs: Inputs) -> Outputs:
        """Cut the rectangle and compute its statistics."""
        p = self.params
        source = inputs[p.input] if p.input else next(iter(inputs.values()))
        image = np.asarray(source.value, dtype=np.float64)
        if image.ndim == 1 and p.shape is not None:
            image = image.reshape(p.shape)
        if image.ndim != 2:
            raise ValueError(f"roi needs a 2-D image (got shape {image.shape}); set params.shape")
        rows, cols = image.shape
        x1 = cols if p.width == 0 else min(cols, p.x + p.width)
        y1 = rows if p.height == 0 else min(rows, p.y + p.height)
        if p.x >= x1 or p.y >= y1:
            raise ValueError(f"the ROI lies outside the {rows} x {cols} image")
        cut = image[p.y : y1, p.x : x1]
        weights = np.clip(cut - p.background, 0, None)
        total = float(weights.sum())
        if total <= 0:
            raise ValueError("nothing above the background in the ROI")
        yy, xx = np.mgrid[p.y : y1, p.x : x1]
        cx, cy = float((weights * xx).sum() / total), float((weights * yy).sum() / total)
        return {
            "sum": float(cut.sum()),
            "mean": float(cut.mean()),
            "max": float(cut.max()),
            "centroid_x": cx,
            "centroid_y": cy,
            "sigma_x": float(np.sqrt((weights * (xx - cx) ** 2).sum() / total)),
            "sigma_y": float(np.sqrt((weights * (yy - cy) ** 2).sum() / total)),
        }
