"""``model``: a scikit-learn (joblib) or ONNX model on the inputs (extra ``[ml]``).

The model file is read from the device's data directory only (never a path or code that
arrives over the network). A joblib file is a pickle: whoever can write the data
directory can run code in the device; keep it as trusted as the device's own code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from epics_collector.processing._api import Inputs, Outputs, Params, Processor
from epics_collector.storage import existing_inside


class ModelParams(Params):
    """Which file, and the order of the features."""

    file: str = Field(
        min_length=1, description=".joblib/.pkl (scikit-learn) or .onnx, in the data dir"
    )
    features: list[str] = Field(
        default_factory=list, description="input names in feature order (default: sorted names)"
    )


class Model(Processor[ModelParams]):
    """``prediction``: the model's output for one row of features (a scalar if one value)."""

    params_model = ModelParams
    default_outputs = {"prediction": "float64"}

    def check(self, input_names: set[str]) -> None:
        """Features are inputs; the file is in the data directory (when it is known)."""
        missing = set(self.params.features) - input_names
        if missing:
            raise ValueError(f"features {sorted(missing)} are not inputs")
        if Path(self.params.file).suffix not in (".joblib", ".pkl", ".onnx"):
            raise ValueError(f"{self.params.file}: use a .joblib, .pkl or .onnx file")
        if self.data_dir is not None:
            self._path()

    def _path(self) -> Path:
        if self.data_dir is None:
            raise ValueError("the model processor needs the device's data directory")
        return existing_inside(self.data_dir, self.params.file)

    def setup(self) -> None:
        """Load the model."""
        self._loaded: tuple[str, Any] | None = None

    def _model(self) -> Any:
        if self._loaded is None or self._loaded[0] != self.params.file:
            path = self._path()
            if path.suffix == ".onnx":
                try:
                    import onnxruntime
                except ImportError:  # pragma: no cover
                    raise RuntimeError(
                        "ONNX models need onnxruntime: pip install 'epics-collector[ml]'"
                    ) from None
                model: Any = onnxruntime.InferenceSession(
                    str(path), providers=["CPUExecutionProvider"]
                )
            else:
                try:
                    import joblib
                except ImportError:  # pragma: no cover
                    raise RuntimeError(
                        "scikit-learn models need joblib: pip install 'epics-collector[ml]'"
                    ) from None
                model = joblib.load(path)
            self._loaded = (self.params.file, model)
        return self._loaded[1]

    def process(self, inputs: Inputs) -> Outputs:
        """Predict from the inputs' newest values."""
        names = self.params.features or sorted(inputs)
        row = np.hstack([np.asarray(inputs[n].value, dtype=np.float64).ravel() for n in names])[
            None, :
        ]
        model = self._model()
        if hasattr(model, "run"):  # onnxruntime
            feed = {model.get_inputs()[0].name: row.astype(np.float32)}
            result = np.asarray(model.run(None, feed)[0], dtype=np.float64)
        else:
            result = np.asarray(model.predict(row), dtype=np.float64)
        result = result.ravel()
        return {"prediction": float(result[0]) if result.size == 1 else result}
