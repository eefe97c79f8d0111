# pyright: reportIndexIssue=false, reportOperatorIssue=false, reportArgumentType=false, reportAttributeAccessIssue=false, reportGeneralTypeIssues=false
# (h5py objects are typed as a union of Group, Dataset and Datatype)
import csv
import subprocess
import sys
from datetime import datetime

import h5py
import numpy as np
import pytest

from epics_collector.storage import (
    ChannelData,
    Columns,
    ExportData,
    SnapshotData,
    write_csv,
    write_nexus,
)


def rows(values, start: float = 1_700_000_000.0) -> Columns:
    values = np.asarray(values)
    n = len(values)
    t = start + np.arange(n) * 0.1
    return Columns(t, values, np.arange(n, dtype=np.int8) % 4, np.zeros(n, np.int8))


@pytest.fixture
def data() -> ExportData:
    channels = [
        ChannelData("temp", "SIM:Temperature", "number", rows(np.linspace(19, 21, 50)), "degC"),
        ChannelData("label", "ca://SIM:Label", "string", rows(np.array(["a", "b"], object))),
        ChannelData("wave", "SIM:Waveform", "waveform", rows(np.ones((3, 4)))),
    ]
    snapshot = SnapshotData(
        1,
        1_700_000_001.0,
        1_700_000_000.5,
        1_700_000_001.5,
        True,
        [ChannelData("temp", "SIM:Temperature", "number", rows([1.0, 2.0], 1_700_000_000.6))],
    )
    notes = [(1_700_000_000.2, "beam tuned"), (1_700_000_003.0, "sample changed")]
    return ExportData("LAB:COL:", '{"capacity": 10}', channels, [snapshot], notes)


def test_nexus_layout_attributes_and_values(tmp_path, data):
    path = tmp_path / "run.nxs"
    write_nexus(path, data)
    assert not list(tmp_path.glob("*.partial"))
    with h5py.File(path) as f:
        assert f.attrs["default"] == "entry"
        entry = f["entry"]
        assert entry.attrs["NX_class"] == "NXentry"
        temp = entry["channels/temp"]
        assert temp.attrs["NX_class"] == "NXlog" and temp.attrs["source"] == "SIM:Temperature"
        start = datetime.fromisoformat(temp["time"].attrs["start"]).timestamp()
        assert np.allclose(temp["time"][()] + start, data.channels[0].rows.time)
        assert np.array_equal(temp["value"][()], data.channels[0].rows.value)
        assert temp["value"].attrs["units"] == "degC"
        assert list(temp["severity"][()]) == list(data.channels[0].rows.severity)
        assert [v.decode() for v in entry["channels/label/value"][()]] == ["a", "b"]
        assert entry["channels/wave/value"].shape == (3, 4)
        snap = entry["snapshots/snapshot_1"]
        assert snap.attrs["complete"] and list(snap["temp/value"][()]) == [1.0, 2.0]
        assert [t.decode() for t in entry["annotations/text"][()]] == [
            "beam tuned",
            "sample changed",
        ]
        assert entry["configuration"].attrs["NX_class"] == "NXnote"
        assert entry["configuration/data"][()].decode() == '{"capacity": 10}'


def test_csv_is_one_long_table(tmp_path, data):
    data.channels = data.channels[:2]
    path = tmp_path / "run.csv"
    write_csv(path, data)
    with path.open() as file:
        lines = list(csv.reader(file))
    assert lines[0] == ["channel", "time", "time_iso", "value", "severity", "status"]
    assert len(lines) == 1 + 50 + 2 + 2
    assert lines[1][0] == "temp" and float(lines[1][3]) == 19.0
    assert lines[-1][0] == "annotation" and lines[-1][3] == "sample changed"


def test_csv_refuses_arrays(tmp_path, data):
    with pytest.raises(ValueError, match="export as nexus"):
        write_csv(tmp_path / "run.csv", data)


def test_csv_text_a_spreadsheet_would_run_is_escaped(tmp_path, data):
    formulas = ["=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1)", "\tx", "plain"]
    data.channels = [
        ChannelData("label", "SIM:Label", "string", rows(np.array(formulas, object))),
        ChannelData("temp", "SIM:Temperature", "number", rows(np.array([-5.0]))),
    ]
    data.annotations = [(1_700_000_009.0, '=HYPERLINK("http://x")')]
    path = tmp_path / "run.csv"
    write_csv(path, data)
    with path.open(newline="") as file:
        lines = list(csv.reader(file))
    values = [line[3] for line in lines[1:]]
    assert values[:6] == ["'" + f for f in formulas[:5]] + ["plain"]
    assert float(values[6]) == -5.0, "a negative number stays a number"
    assert values[7] == '\'=HYPERLINK("http://x")'


@pytest.mark.parametrize("writer", [write_nexus, write_csv])
def test_channels_given_as_readers_are_held_one_at_a_time(tmp_path, writer) -> None:
    """Issue 40, finding 3: an export copied every channel's history before writing."""
    import weakref

    held: list[weakref.ref] = []

    def reader(k: int):
        def read() -> Columns:
            alive = [r for r in held if r() is not None]
            assert not alive, "an earlier channel's copy is still held"
            made = rows(np.full(1000, float(k)))
            held.append(weakref.ref(made.value))
            return made

        return read

    channels = [
        ChannelData(f"c{k}", f"SIM:C{k}", "number", reader(k), span=(1.7e9, 1.7e9 + 99.9))
        for k in range(5)
    ]
    data = ExportData("LAB:COL:", "{}", channels, [], [])
    assert writer(tmp_path / f"out.{writer.__name__}", data) == 5000
    assert len(held) == 5


def test_a_device_imports_h5py_only_when_it_first_exports() -> None:
    """h5py costs about 12 MB resident per process; most devices never export."""
    code = (
        "import sys, epics_collector.cli, epics_collector.collector, epics_collector.devices\n"
        "assert 'h5py' not in sys.modules, 'h5py imported at start'\n"
        "from epics_collector.storage import write_nexus\n"
        "assert 'h5py' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
