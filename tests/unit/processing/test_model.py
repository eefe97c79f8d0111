"""The model processor with a real scikit-learn model and a real ONNX model."""

import os

import joblib
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from sklearn.linear_model import LinearRegression

from epics_collector.processing import Input, load_processor
from epics_collector.storage import PathError


def linear_onnx(path) -> None:
    """y = 2 a + 3 b + 1 as an ONNX graph."""
    weights = helper.make_tensor("W", TensorProto.FLOAT, [2, 1], [2.0, 3.0])
    bias = helper.make_tensor("B", TensorProto.FLOAT, [1], [1.0])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["XW"]),
            helper.make_node("Add", ["XW", "B"], ["Y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 1])],
        [weights, bias],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))


def model_processor(tmp_path, file: str):
    cls = load_processor("model")
    processor = cls(cls.params_model.model_validate({"file": file, "features": ["a", "b"]}))
    processor.data_dir = tmp_path
    processor.check({"a", "b"})
    processor.setup()
    return processor


def test_sklearn_and_onnx_models_predict(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(50, 2))
    joblib.dump(LinearRegression().fit(x, 2 * x[:, 0] + 3 * x[:, 1] + 1), tmp_path / "lin.joblib")
    linear_onnx(tmp_path / "lin.onnx")
    inputs = {"a": Input(1.5, 0.0), "b": Input(-2.0, 0.0)}
    for file in ("lin.joblib", "lin.onnx"):
        out = model_processor(tmp_path, file).process(inputs)
        assert out["prediction"] == pytest.approx(2 * 1.5 + 3 * -2.0 + 1, rel=1e-5), file


def test_model_files_come_only_from_the_data_directory(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    linear_onnx(outside / "m.onnx")
    os.symlink(outside / "m.onnx", data / "link.onnx")
    for file in ("../outside/m.onnx", str(outside / "m.onnx"), "link.onnx", "missing.onnx"):
        with pytest.raises(PathError):
            model_processor(data, file)
    with pytest.raises(ValueError, match="use a .joblib"):
        model_processor(data, "model.py")
