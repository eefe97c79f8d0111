"""The one normative-type reader: values, times, alarms and metadata of each NT type."""

from __future__ import annotations

import numpy as np
import pytest
from p4p import Type, Value
from p4p.nt import NTEnum, NTNDArray, NTTable
from p4p.nt.common import alarm as alarm_t
from p4p.nt.common import timeStamp as timeStamp_t

from epics_collector.pva import alarm, decode, decoder_for, metadata, sequence_for, timestamp


def _scalar() -> Value:
    """An NTScalar as an IOC's QSRV serves it (display.precision, valueAlarm)."""
    display = [("limitLow", "d"), ("limitHigh", "d"), ("units", "s"), ("precision", "i")]
    kind = Type(
        [
            ("value", "d"),
            ("alarm", alarm_t),
            ("timeStamp", timeStamp_t),
            ("display", ("S", None, display)),
            ("valueAlarm", ("S", None, [("highAlarmLimit", "d")])),
        ],
        id="epics:nt/NTScalar:1.0",
    )
    return Value(
        kind,
        {
            "value": 2.5,
            "display": {"units": "mA", "precision": 3, "limitLow": 0.0, "limitHigh": 10.0},
            "valueAlarm": {"highAlarmLimit": 9.0},
            "timeStamp": {"secondsPastEpoch": 1_700_000_000, "nanoseconds": 500_000_000},
            "alarm": {"severity": 2, "status": 3, "message": "HIHI"},
        },
    )


def test_a_scalar_with_its_time_alarm_and_metadata() -> None:
    value = _scalar()
    assert decode(value) == 2.5 and decoder_for(value)(value) == 2.5
    assert timestamp(value) == pytest.approx(1_700_000_000.5)
    assert alarm(value) == (2, 3, "HIHI")
    found = metadata(value)
    assert (found.units, found.precision) == ("mA", 3)
    assert found.limits["LOPR"] == 0.0 and found.limits["HOPR"] == 10.0
    assert found.limits["HIHI"] == 9.0 and found.choices is None


def test_an_enum_decodes_to_its_name_and_a_source_records_its_index() -> None:
    value = NTEnum().wrap({"index": 1, "choices": ["Off", "On"]})
    assert decode(value) == "On" and decoder_for(value)(value) == 1
    assert metadata(value).choices == ["Off", "On"]
    out_of_range = NTEnum().wrap({"index": 5, "choices": ["Off", "On"]})
    assert decode(out_of_range) == 5


def test_a_table_decodes_to_its_columns() -> None:
    value = NTTable([("time", "d"), ("text", "s")]).wrap([{"time": 1.0, "text": "a"}])
    table = decode(value)
    assert list(table) == ["time", "text"] and table["text"].tolist() == ["a"]


def test_an_image_decodes_to_rows_by_columns_with_its_sequence_number() -> None:
    pixels = np.arange(6, dtype=np.uint16).reshape(2, 3)
    value = NTNDArray().wrap(pixels)
    value["uniqueId"] = 42
    assert decode(value).shape == (2, 3) and decoder_for(value)(value).tolist() == pixels.tolist()
    sequence = sequence_for(value)
    assert sequence is not None and sequence(value) == 42
    assert sequence_for(_scalar()) is None


def test_a_plain_structure_has_no_time_alarm_or_metadata() -> None:
    value = Value(Type([("value", "i")]), {"value": 7})
    assert decode(value) == 7 and timestamp(value) == 0.0 and alarm(value) == (0, 0, "")
    assert metadata(value).units is None and metadata(value).limits == {}
    with pytest.raises(ValueError, match="no value field"):
        decoder_for(Value(Type([("x", "i")]), {"x": 1}))
