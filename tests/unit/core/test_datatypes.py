import numpy as np
import pytest

from epics_collector.core import Bool, Enum, Float, Int, NDArray, String, Table, Waveform


@pytest.mark.parametrize(
    ("value", "expected"), [(3, 3), (True, 1), (4.0, 4), ("0x10", 16), (" 7 ", 7), (np.int16(5), 5)]
)
def test_int_accepts_integral_values(value, expected):
    assert Int().coerce(value) == expected


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (2.5, "not an integer"),
        ("abc", "not an integer"),
        (None, "not an integer"),
        (11, "above the upper limit 10"),
        (-1, "below the lower limit 0"),
    ],
)
def test_int_refuses_with_reason(value, error):
    with pytest.raises(ValueError, match=error):
        Int(low=0, high=10).coerce(value)


def test_int_width():
    assert Int(width=32).coerce(2**31 - 1) == 2**31 - 1
    with pytest.raises(ValueError, match="32 bits"):
        Int(width=32).coerce(2**31)


def test_float():
    assert Float().coerce("1.5") == 1.5
    assert np.isnan(Float(low=0, high=1).coerce(float("nan")))
    with pytest.raises(ValueError, match="not a number"):
        Float().coerce("x")
    with pytest.raises(ValueError, match="above"):
        Float(high=1.0).coerce(2)


def test_bool_and_string():
    assert Bool().coerce(1) is True
    assert Bool().coerce("false") is False
    with pytest.raises(ValueError, match="not a boolean"):
        Bool().coerce(2)
    assert String().coerce("x") == "x"
    with pytest.raises(ValueError, match="not a string"):
        String().coerce(3)
    with pytest.raises(ValueError, match="longer than 2"):
        String(max_length=2).coerce("abc")


def test_enum_by_name_or_index():
    kind = Enum(choices=["Idle", "Fault"])
    assert kind.coerce("Fault") == "Fault"
    assert kind.coerce(0) == "Idle"
    assert kind.initial == "Idle"
    with pytest.raises(ValueError, match="not one of"):
        kind.coerce(2)
    with pytest.raises(ValueError, match="not one of"):
        kind.coerce("Busy")


def test_waveform_and_ndarray():
    wave = Waveform(dtype=np.int32).coerce([1, 2, 3])
    assert wave.dtype == np.int32
    assert list(wave) == [1, 2, 3]
    with pytest.raises(ValueError, match="1-D"):
        Waveform().coerce([[1.0]])
    with pytest.raises(ValueError, match="not an array"):
        Waveform().coerce(["a"])
    assert NDArray(dtype=np.uint16).coerce(np.ones((2, 3))).shape == (2, 3)
    with pytest.raises(ValueError, match="2 dimensions"):
        NDArray().coerce([1.0])


def test_table():
    kind = Table(columns={"time": np.float64, "name": str})
    table = kind.coerce({"time": [1.0, 2.0], "name": ["a", "b"]})
    assert list(table["name"]) == ["a", "b"]
    assert kind.coerce({"time": []})["name"].size == 0
    with pytest.raises(ValueError, match="unknown columns"):
        kind.coerce({"other": [1]})
    with pytest.raises(ValueError, match="differ in length"):
        kind.coerce({"time": [1.0], "name": []})
