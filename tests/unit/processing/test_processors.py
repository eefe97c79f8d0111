"""Built-in processors on known data."""

import numpy as np
import pytest

from epics_collector.processing import Input, load_processor, processor_names
from epics_collector.processing.processors._calc import compile_expression


def run(name: str, params: dict, inputs: dict, setup: bool = True) -> dict:
    cls = load_processor(name)
    processor = cls(cls.params_model.model_validate(params))
    processor.check(set(inputs))
    if setup:
        processor.setup()
    return dict(processor.process({k: Input(v, 0.0) for k, v in inputs.items()}))


def test_registry_has_the_builtins():
    assert {"calc", "stats", "fit", "fft", "roi", "pid"} <= set(processor_names())


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("a * 2 + b", 7.0),
        ("a ^ 2", 4.0),
        ("(a > 1) && (b < 4)", True),
        ("a # b", True),
        ("!(a == 2)", False),
        ("sqrt(b) + abs(-1) + pi * 0", 1 + np.sqrt(3)),
        ("b if a > 5 else a", 2.0),
        ("maximum(a, b)", 3.0),
    ],
)
def test_calc(expression, expected):
    assert run("calc", {"expression": expression}, {"a": 2.0, "b": 3.0})["result"] == pytest.approx(
        expected
    )


def test_calc_on_arrays():
    result = run("calc", {"expression": "mean(a * b)"}, {"a": np.arange(4.0), "b": np.ones(4)})
    assert result["result"] == 1.5


@pytest.mark.parametrize(
    ("expression", "error"),
    [
        ("__import__('os').system('x')", "only these functions|Attribute"),
        ("a.__class__", "Attribute is not allowed"),
        ("(lambda: 1)()", "only these functions"),
        ("[x for x in a]", "not allowed"),
        ("a[0]", "Subscript is not allowed"),
        ("open('f')", "only these functions"),
        ("abs(x=1)", "keyword"),
        ("a +", "cannot parse"),
        ("'text'", "only numbers"),
        ("c", "unknown name 'c'"),
    ],
)
def test_calc_refuses_unsafe_or_bad_expressions(expression, error):
    with pytest.raises(ValueError, match=error):
        compile_expression(expression, {"a", "b"})


def test_stats_of_an_array_and_of_a_window():
    data = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    out = run("stats", {}, {"x": data})
    assert (out["mean"], out["min"], out["max"], out["median"], out["sum"], out["n"]) == (
        2.5,
        1,
        4,
        2.5,
        10,
        4,
    )
    assert out["rms"] == pytest.approx(np.sqrt(7.5)) and out["std"] == pytest.approx(
        np.std([1, 2, 3, 4])
    )
    cls = load_processor("stats")
    window = cls(cls.params_model.model_validate({"window": 3}))
    window.setup()
    means = [window.process({"x": Input(v, 0.0)})["mean"] for v in (1.0, 2.0, 3.0, 10.0)]
    assert means == [1.0, 1.5, 2.0, 5.0]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.uint16, np.int16])
@pytest.mark.parametrize("shape", [(128, 128), (1,), (2,), (7,), (33, 17)])
def test_stats_of_camera_pixels_equal_numpy(dtype, shape):
    """8/16-bit images take the histogram path; the figures must be numpy's."""
    info = np.iinfo(dtype)
    pixels = np.random.default_rng(7).integers(info.min, info.max, shape, dtype, endpoint=True)
    pixels.flat[0] = info.min  # both ends of the range present
    pixels.flat[-1] = info.max
    out = run("stats", {}, {"img": pixels})
    data = pixels.astype(np.float64).ravel()
    expected = {
        "mean": data.mean(),
        "std": data.std(),
        "min": data.min(),
        "max": data.max(),
        "median": np.median(data),
        "rms": np.sqrt(np.mean(data * data)),
        "sum": data.sum(),
        "n": data.size,
    }
    for name, value in expected.items():
        assert out[name] == pytest.approx(value, rel=1e-12, abs=1e-9), name


@pytest.mark.parametrize(
    ("model", "truth"),
    [
        ("gaussian", {"amplitude": 5.0, "center": 40.0, "sigma": 6.0, "offset": 1.0}),
        ("lorentzian", {"amplitude": 5.0, "center": 40.0, "gamma": 6.0, "offset": 1.0}),
    ],
)
def test_fit_peaks(model, truth):
    from epics_collector.processing.processors._fit import PEAKS

    x = np.arange(100.0)
    y = PEAKS[model][0](x, *truth.values()) + np.random.default_rng(1).normal(0, 0.01, x.size)
    out = run("fit", {"model": model}, {"y": y})
    for name, value in truth.items():
        assert out[name] == pytest.approx(value, rel=0.01)
        assert 0 < out[name + "_error"] < 0.05
    assert out["r2"] > 0.999 and out["chi2"] < 1e-3


def test_fit_linear_and_polynomial():
    x = np.linspace(0, 10, 50)
    out = run("fit", {"model": "linear", "x": "x", "y": "y"}, {"x": x, "y": 2 * x + 1})
    assert out["slope"] == pytest.approx(2) and out["intercept"] == pytest.approx(1)
    out = run(
        "fit",
        {"model": "polynomial", "degree": 2, "x": "x", "y": "y"},
        {"x": x, "y": 3 * x**2 - x + 4},
    )
    assert [out["c0"], out["c1"], out["c2"]] == pytest.approx([4, -1, 3])


def test_fft_finds_the_peak():
    t = np.arange(1000) / 1000.0
    out = run("fft", {"sample_rate": 1000.0}, {"s": 2.0 * np.sin(2 * np.pi * 50 * t)})
    assert out["peak_frequency"] == pytest.approx(50.0)
    assert out["peak_amplitude"] == pytest.approx(2.0, rel=0.05)
    assert len(out["spectrum"]) == len(out["frequencies"]) == 501


def test_roi_centroid_and_statistics():
    rows, cols = np.mgrid[0:60, 0:80]
    image = 100 * np.exp(-((cols - 50.0) ** 2 + (rows - 20.0) ** 2) / (2 * 3.0**2))
    out = run("roi", {}, {"img": image})
    assert out["centroid_x"] == pytest.approx(50.0, abs=0.01) and out[
        "centroid_y"
    ] == pytest.approx(20.0, abs=0.01)
    assert out["sigma_x"] == pytest.approx(3.0, rel=0.01)
    cut = run("roi", {"x": 0, "width": 40}, {"img": image + 1})
    assert cut["centroid_x"] < 40
    with pytest.raises(ValueError, match="outside"):
        run("roi", {"x": 100}, {"img": image})


def test_pid_reaches_the_target_on_a_first_order_plant_with_limits():
    from epics_collector.processing.processors._pid import Pid, PidParams

    settings = {"setpoint": 30, "kp": 0.5, "ki": 1.0, "low": 0, "high": 40, "max_rate": 20}
    pid = Pid(PidParams.model_validate(settings))
    pid.setup()
    now = [0.0]
    pid.clock = lambda: now[0]
    readback, output, outputs = 0.0, 0.0, []
    for _ in range(200):
        now[0] += 0.1
        readback += (output - readback) * 0.2
        output = pid.process({"rb": Input(readback, now[0])})["output"]
        outputs.append(output)
    assert readback == pytest.approx(30.0, abs=0.05)
    assert all(0 <= o <= 40 for o in outputs)
    assert all(abs(b - a) <= 2.0 + 1e-9 for a, b in zip(outputs, outputs[1:], strict=False))


@pytest.mark.parametrize(
    ("name", "params"),
    [("pid", {"input": "nope"}), ("fft", {"input": "nope"}), ("fit", {"y": "nope"})],
)
def test_a_parameter_naming_an_input_must_name_one(name: str, params: dict) -> None:
    from epics_collector.processing._api import load_processor

    processor = load_processor(name)
    instance = processor(processor.params_model.model_validate(params))
    with pytest.raises(ValueError, match="'nope' is not one of the inputs"):
        instance.check({"a", "b"})
