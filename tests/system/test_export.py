# pyright: reportIndexIssue=false, reportOperatorIssue=false, reportArgumentType=false, reportAttributeAccessIssue=false, reportGeneralTypeIssues=false
# (h5py objects are typed as a union of Group, Dataset and Datatype)
"""Export, path safety and annotations on a running collector."""

import csv
import os
import time
from datetime import datetime

import h5py
import numpy as np
import pytest
from p4p.client.thread import RemoteError
from tests.conftest import wait_published

from epics_collector.process import wait_for, wait_until
from epics_collector.storage import SpillStore

pytestmark = pytest.mark.system


def test_export_during_recording_holds_what_was_recorded(sim_ioc, collector, prefix, ctx, tmp_path):
    p = sim_ioc.prefix
    channels = [
        {"pv": p + "Counter", "alias": "counter"},
        {"pv": p + "Temperature", "alias": "temp", "units": "degC"},
        {"pv": p + "Waveform", "alias": "wave", "kind": "waveform"},
    ]
    quiet = {"pv": p + "Image:Width", "when": "change", "pre": 0.5, "post": 0.2}
    collector({"channels": channels, "trigger": quiet})
    ctx.put(prefix + "Start", 1)
    rows = prefix + "counter:Time"
    wait_for(lambda: len(ctx.get(rows)) >= 10, 5, "1 s recorded")
    ctx.put(prefix + "Annotate", "beam tuned")
    ctx.put(prefix + "Trigger", 1)
    wait_for(lambda: len(ctx.get(prefix + "Snapshots").value.id) == 1, 5, "the snapshot")
    ctx.put(prefix + "Annotate", "sample changed")
    put_at = time.time()
    ctx.put(prefix + "Export", "run1")  # returns once the file is written
    exported = len(ctx.get(rows))
    wait_for(lambda: len(ctx.get(rows)) >= exported + 5, 5, "recording after the export")
    ctx.put(prefix + "Stop", 1)
    wait_published(ctx, prefix, "counter", "temp", "wave")
    path = ctx.get(prefix + "ExportPath")
    assert path == str((tmp_path / "data" / "run1.nxs").resolve())
    final = ctx.get(prefix + "counter:Value")
    with h5py.File(path) as f:
        log = f["entry/channels/counter"]
        values = log["value"][()]
        start = datetime.fromisoformat(log["time"].attrs["start"]).timestamp()
        times = log["time"][()] + start
        assert np.array_equal(values, final[: len(values)]), "not a prefix of the history"
        assert len(values) < len(final), "the recording went on after the export"
        assert times[-1] > put_at - 0.3  # everything recorded before the put is in the file
        assert f["entry/channels/temp/value"].attrs["units"] == "degC"
        assert f["entry/channels/wave/value"].shape[1] == 1000
        assert "snapshot_1" in f["entry/snapshots"]
        notes = [t.decode() for t in f["entry/annotations/text"][()]]
        assert notes == ["beam tuned", "sample changed"]
    assert ctx.get(prefix + "Dropped") == 0
    table = ctx.get(prefix + "Annotations").value
    assert list(table.text) == ["beam tuned", "sample changed"]


def test_csv_export(sim_ioc, collector, prefix, ctx, tmp_path):
    collector(
        {
            "channels": [{"pv": sim_ioc.prefix + "Counter", "alias": "c"}],
            "export": {"format": "csv"},
        }
    )
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: ctx.get(prefix + "Count") >= 10, 5, "1 s recorded")
    ctx.put(prefix + "Stop", 1)
    ctx.put(prefix + "Export", "run")  # returns once the file is written
    wait_published(ctx, prefix, "c")
    with open(ctx.get(prefix + "ExportPath")) as file:
        rows = list(csv.DictReader(file))
    assert [float(r["value"]) for r in rows] == list(ctx.get(prefix + "c:Value"))


def test_path_tricks_are_refused_and_nothing_leaves(sim_ioc, collector, prefix, ctx, tmp_path):
    collector({"channels": [sim_ioc.prefix + "Counter"]})
    # let the "all channels connected" message pass before checking refusal messages
    wait_for(lambda: ctx.get(prefix + "Message") == "all channels connected", 5, "connected")
    data, outside = tmp_path / "data", tmp_path / "outside"
    outside.mkdir()
    data.mkdir(exist_ok=True)
    os.symlink(outside, data / "escape")
    (data / "taken.nxs").write_text("keep me")
    for name, reason in [
        ("/tmp/evil", "absolute"),
        ("../evil", "'..'"),
        ("escape/evil", "outside the data directory"),
        ("taken", "exists"),
    ]:
        with pytest.raises(RemoteError, match=reason):
            ctx.put(prefix + "Export", name)
        # the caller's own error: the device's news for everybody stays as it was
        assert ctx.get(prefix + "Message") == "all channels connected"
    assert not list(outside.iterdir())
    assert (data / "taken.nxs").read_text() == "keep me"
    with pytest.raises(RemoteError, match="needs some text"):
        ctx.put(prefix + "Annotate", "  ")
    assert wait_until(lambda: str(ctx.get(prefix + "State")) == "Idle", 1)


def test_push_adds_samples_to_extra_channels(sim_ioc, collector, prefix, ctx):
    from p4p.nt import NTURI

    def push(**arguments: str) -> str:
        uri = NTURI([(k, "s") for k in arguments])
        return ctx.rpc(prefix + "Push", uri.wrap(prefix + "Push", kws=arguments))

    collector({"channels": [{"pv": sim_ioc.prefix + "Counter", "alias": "c"}]})
    assert push(channel="sample_temp", value="4.2", time="1700000000.5") == "sample_temp: 1 rows"
    assert push(channel="sample_temp", value="4.3") == "sample_temp: 2 rows"
    assert push(channel="logbook", value="crystal mounted", severity="1") == "logbook: 1 rows"
    wait_for(lambda: len(ctx.get(prefix + "sample_temp:Value")) == 2, 5, "pushed rows served")
    assert list(ctx.get(prefix + "sample_temp:Value")) == [4.2, 4.3]
    assert ctx.get(prefix + "sample_temp:Time")[0] == 1700000000.5
    assert list(ctx.get(prefix + "logbook:Value")) == ["crystal mounted"]
    with pytest.raises(RemoteError, match="holds numbers"):
        push(channel="sample_temp", value="warm")
    with pytest.raises(RemoteError, match="extra channel"):
        push(channel="c", value="1")
    with pytest.raises(RemoteError, match="alias"):
        push(channel="bad:alias", value="1")
    with pytest.raises(RemoteError, match="bad arguments"):
        push(value="1")
    ctx.put(prefix + "Export", "pushed")
    with h5py.File(ctx.get(prefix + "ExportPath")) as f:
        assert list(f["entry/channels/sample_temp/value"][()]) == [4.2, 4.3]


def test_a_bad_push_is_refused_and_poisons_nothing(sim_ioc, collector, prefix, ctx, tmp_path):
    """Issue 18, finding 3: empty channel names, impossible times, huge values."""
    from p4p.nt import NTURI

    def push(**arguments: str) -> str:
        uri = NTURI([(k, "s") for k in arguments])
        return ctx.rpc(prefix + "Push", uri.wrap(prefix + "Push", kws=arguments))

    config = {
        "channels": [{"pv": sim_ioc.prefix + "Counter", "alias": "c"}],
        "persist": True,
        "push_max_bytes": 1000,
    }
    collector(config)
    refused = [
        ({"channel": "", "value": "1"}, "alias rule"),
        ({"channel": "t", "value": "1", "time": "1e20"}, "outside 1990"),
        ({"channel": "t", "value": "1", "time": "inf"}, "outside 1990"),
        ({"channel": "t", "value": "1", "time": "nan"}, "outside 1990"),
        ({"channel": "t", "value": "x" * 1001}, "push_max_bytes"),
    ]
    for arguments, reason in refused:
        with pytest.raises(RemoteError, match=reason):
            push(**arguments)
    assert push(channel="t", value="2.5") == "t: 1 rows"
    data = tmp_path / "data"
    # the next flush writes the good row and nothing else (no bad channel, no error)
    store = SpillStore(data / "spill" / "history.sqlite")
    assert wait_until(lambda: store.rows("t") == 1, 5)
    assert wait_until(lambda: ctx.get(prefix + "Message").severity == 0, 5)
    assert set(store.channels()) <= {"c", "t"}
    for fmt in ("nexus", "csv"):
        ctx.put(prefix + "ExportFormat", fmt)
        ctx.put(prefix + "Export", f"after-bad-pushes-{fmt}")
        assert os.path.exists(ctx.get(prefix + "ExportPath"))
    with h5py.File(data / "after-bad-pushes-nexus.nxs") as f:
        assert list(f["entry/channels/t/value"][()]) == [2.5]
