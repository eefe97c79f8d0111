import math
import time

from epics_collector.collector import CollectorConfig, Event, Recorder
from epics_collector.core import Severity, Status, Update

T = 1.7e9  # a source time (updates at or before 1990 are not recorded)


def make(**config):
    events = []
    recorder = Recorder(
        CollectorConfig.model_validate({"channels": ["A", "B"], **config}),
        lambda event, channel: events.append((event, channel.alias)),
    )
    return recorder, events


def test_records_only_while_recording_and_keeps_time_and_alarm():
    recorder, _ = make()
    a = recorder.channels[0]
    a.on_update(Update(1.0, T + 100.0))
    recorder.start()  # the current value is recorded at start
    a.on_update(Update(2.0, T + 101.0, Severity.MAJOR, Status.DEVICE))
    recorder.stop()
    a.on_update(Update(3.0, T + 102.0))
    rows = recorder.history.rows(a)
    assert list(rows.value) == [1.0, 2.0]
    assert list(rows.time) == [T + 100.0, T + 101.0]
    assert list(rows.severity) == [0, Severity.MAJOR]
    assert list(rows.status) == [0, Status.DEVICE]
    assert recorder.count == 2


def test_restart_does_not_record_the_same_latest_value_twice():
    recorder, _ = make()
    a = recorder.channels[0]
    recorder.start()
    a.on_update(Update(1.0, T + 100.0))
    recorder.stop()
    recorder.start()
    assert len(recorder.history.rows(a)) == 1


def test_disconnect_while_recording_leaves_a_gap_row():
    recorder, events = make()
    a = recorder.channels[0]
    a.on_connection(True, "connected")
    recorder.start()
    a.on_update(Update(1.0, T + 100.0))
    a.on_connection(False, "disconnected")
    a.on_connection(True, "connected")
    a.on_update(Update(1.0, time.time() + 60))
    rows = recorder.history.rows(a)
    assert math.isnan(rows.value[1])
    assert (rows.severity[1], rows.status[1]) == (Severity.INVALID, Status.CLIENT)
    assert rows.value[2] == 1.0
    assert (Event.CONNECTION, "A") in events


def test_fill_mode_full_counts_dropped_and_stops():
    recorder, events = make(mode="fill", capacity=2)
    recorder.start()
    for i in range(3):
        recorder.channels[0].on_update(Update(float(i), T + i))
    assert recorder.dropped == 1
    assert not recorder.recording
    assert (Event.FULL, "A") in events


def test_sample_limit_stops_exactly():
    recorder, events = make(limits={"samples": 3})
    recorder.start()
    for i in range(5):
        recorder.channels[i % 2].on_update(Update(float(i), T + i))
    assert recorder.count == 3
    assert (Event.SAMPLE_LIMIT, "A") in events


def test_wrong_kind_is_counted_and_reported():
    recorder, events = make()
    recorder.start()
    recorder.channels[0].on_update(Update(1.0, T))  # (an auto channel: number from now on)
    recorder.channels[0].on_update(Update("text", T + 1))
    assert recorder.dropped == 1
    assert "cannot record str values" in recorder.channels[0].problem
    assert (Event.BAD_VALUE, "A") in events


def test_clear():
    recorder, _ = make()
    recorder.start()
    recorder.channels[0].on_update(Update(1.0, T))
    recorder.clear()
    assert recorder.count == 0 and len(recorder.history.rows(recorder.channels[0])) == 0


def test_an_update_that_cannot_be_recorded_is_counted_and_the_others_go_on():
    """Issue 18, finding 1: isolation of a channel whose recording raises."""
    from epics_collector.collector import CollectorConfig, Recorder
    from epics_collector.collector._recorder import Event
    from epics_collector.core import Update

    events: list[tuple[Event, str]] = []
    bad_config = {"pv": "BAD", "deadband": {"absolute": 0}}  # a channel that reduces
    config = CollectorConfig.model_validate({"channels": ["GOOD", bad_config]})
    recorder = Recorder(config, lambda event, channel: events.append((event, channel.alias)))
    good, bad = recorder.channels

    def broken(row):
        raise OverflowError("a bug")

    bad.reducer.push = broken  # type: ignore[method-assign]
    recorder.start()
    for i in range(5):
        good.on_update(Update(float(i), T + 100.0 + i))
        bad.on_update(Update(float(i), T + 100.0 + i))
    assert list(recorder.history.rows(good).value) == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert len(bad.ring) == 0
    assert (recorder.dropped, bad.dropped, bad.failures) == (5, 5, 5)
    assert events.count((Event.BAD_VALUE, "BAD")) == 5
    assert (
        "recording its updates failed (5 so far" in bad.problem and "OverflowError" in bad.problem
    )


def test_an_update_without_a_source_time_is_counted_as_a_gap_not_recorded() -> None:
    recorder, events = make()
    a = recorder.channels[0]
    recorder.start()
    a.on_update(Update(5.0, T))  # a real value
    before = time.time()
    a.on_update(Update(0.0, 631152000.0))  # a record never processed: EPICS time 0
    a.on_update(Update(0.0, 1e5))  # set, but before 1990: nonsense
    a.on_update(Update(0.0, math.nan))
    later = time.time() + 60.0  # a valid source time after the arrival times
    a.on_update(Update(3.0, later))
    rows = recorder.history.rows(a)
    assert rows.value[0] == 5.0 and math.isnan(rows.value[1]) and rows.value[2] == 3.0
    assert len(rows) == 3  # one gap for both, no fake 0.0
    assert before <= rows.time[1] <= time.time() and rows.time[2] == later
    assert rows.severity[1] == 3
    assert (a.bad_time, a.dropped, recorder.dropped) == (3, 3, 3)
    assert events.count((Event.BAD_VALUE, a.alias)) == 1
    assert "no valid timestamp" in a.problem


def test_a_server_that_sends_no_timestamps_is_stamped_on_arrival_and_reported_once() -> None:
    recorder, events = make()
    a = recorder.channels[0]
    recorder.start()
    before = time.time()
    a.on_update(Update(1.0, 0.0))  # timeStamp left 0 (p4p's post without timestamp=)
    a.on_update(Update(2.0, 0.0))
    rows = recorder.history.rows(a)
    assert list(rows.value) == [1.0, 2.0] and before <= rows.time[0] <= rows.time[1]
    assert a.bad_time == 0 and events.count((Event.BAD_VALUE, a.alias)) == 1
    assert "sends no timestamps" in a.problem


def test_a_disconnect_gap_is_not_repeated_for_the_restarted_records_first_update() -> None:
    recorder, _ = make()
    a = recorder.channels[0]
    recorder.start()
    a.on_connection(True, "connected")
    a.on_update(Update(5.0, T))
    a.on_connection(False, "IOC restarting")  # the gap row
    a.on_connection(True, "connected")
    a.on_update(Update(0.0, 631152000.0))  # the UDF value at EPICS time 0
    a.on_update(Update(6.0, time.time() + 60))
    rows = recorder.history.rows(a)
    assert [v if not math.isnan(v) else None for v in rows.value] == [5.0, None, 6.0]
    assert a.bad_time == 1


def test_a_source_time_that_goes_back_is_counted_not_recorded():
    recorder, events = make()
    a = recorder.channels[0]
    recorder.start()
    for value, stamp in ((1.0, T + 10), (2.0, T + 5), (3.0, T + 10), (4.0, T + 11), (5.0, T)):
        a.on_update(Update(value, stamp))
    rows = recorder.history.rows(a)
    assert list(rows.value) == [1.0, 3.0, 4.0]  # the same time again is kept
    assert (recorder.dropped, a.dropped, a.late) == (2, 2, 2)
    assert events.count((Event.BAD_VALUE, "A")) == 1  # said once; counted every time
    assert "timestamp went back" in a.problem


def test_after_a_clear_time_going_back_is_said_again():
    """Issue 40, slip: Clear kept late and problem, so it was never reported again."""
    recorder, events = make()
    a = recorder.channels[0]
    recorder.start()
    a.on_update(Update(1.0, T + 10))
    a.on_update(Update(2.0, T + 5))
    assert (a.late, events.count((Event.BAD_VALUE, "A"))) == (1, 1)
    recorder.clear()
    assert (a.late, a.bad_time, a.problem) == (0, 0, "")
    a.on_update(Update(3.0, T + 20))
    a.on_update(Update(4.0, T + 15))
    assert a.late == 1 and "timestamp went back" in a.problem
    assert events.count((Event.BAD_VALUE, "A")) == 2  # said again


def test_pushes_out_of_order_are_refused_and_the_history_stays_ordered():
    import pytest

    from epics_collector.collector import ChannelConfig
    from epics_collector.storage import Query

    recorder, _ = make()
    p = recorder.add_channel(ChannelConfig(pv="push:p", alias="p"))
    recorder.push(p, Update(1.0, T))
    for stamp in (T - 1000, T - 500, T - 2000, T - 1):
        with pytest.raises(ValueError, match="before p's newest row .*time order"):
            recorder.push(p, Update(9.0, stamp))
    recorder.push(p, Update(2.0, T))
    recorder.push(p, Update(3.0, T + 1))
    assert list(recorder.history.rows(p).time) == [T, T, T + 1]
    got = recorder.history.query(p, Query(T - 5000, T + 5, 10, "raw"))
    assert list(got["value"]) == [1.0, 2.0, 3.0]


def test_rows_restored_out_of_order_are_put_in_order():
    import numpy as np

    from epics_collector.storage import Columns

    recorder, _ = make()
    a = recorder.channels[0]
    times = np.array([T, T - 1000, T - 500, T - 2000, T - 1])
    zeros = np.zeros(5, np.int8)
    recorder.unflushed.restore(a, Columns(times, np.arange(5.0), zeros, zeros))
    rows = recorder.history.rows(a)
    assert list(rows.time) == sorted(times) and list(rows.value) == [3.0, 1.0, 2.0, 4.0, 0.0]
    assert recorder.history.span(a) == (T - 2000, T)


def test_a_gap_row_never_goes_before_the_newest_row():
    recorder, _ = make()
    a = recorder.channels[0]
    a.on_connection(True, "connected")
    recorder.start()
    future = time.time() + 3600  # a source whose clock is ahead of ours
    a.on_update(Update(1.0, future))
    a.on_connection(False, "disconnected")
    rows = recorder.history.rows(a)
    assert len(rows) == 2 and math.isnan(rows.value[1]) and rows.time[1] > future


def test_a_page_starts_at_the_value_then_and_stops_at_points() -> None:
    from epics_collector.collector import ChannelConfig
    from epics_collector.storage import PAGE, Query

    recorder, _ = make()
    p = recorder.add_channel(ChannelConfig(pv="push:p", alias="p"))
    for k in range(10):
        recorder.push(p, Update(float(k), T + k))
    page = recorder.history.query(p, Query(T + 2.5, T + 100, 3, PAGE))
    assert list(page["time"]) == [T + 2, T + 3, T + 4]  # the row at 2.5 s is the one of 2 s
    assert list(page["value"]) == [2.0, 3.0, 4.0]
    assert list(recorder.history.query(p, Query(T + 9, T + 100, 5, PAGE))["time"]) == [T + 9]
    before = recorder.history.query(
        p, Query(T - 10, T + 1, 100, PAGE)
    )  # nothing before: from start
    assert list(before["time"]) == [T, T + 1]


def test_a_full_channel_stops_the_run_with_the_others_pending_periodic_rows():
    """Issue 40, slip: a fill-mode stop skipped the other channels' pending rows."""
    recorder, events = make(
        channels=[
            {"pv": "A", "alias": "a"},
            {"pv": "B", "alias": "b", "compress": {"algorithm": "periodic", "period": 10.0}},
        ],
        capacity=2,
        mode="fill",
    )
    a, b = recorder.channels
    recorder.start()
    b.on_update(Update(7.0, T + 1))  # pending: its period has not ended
    for k in range(3):  # the third row does not fit: A is full, the run stops
        a.on_update(Update(float(k), T + 2 + k))
    assert (Event.FULL, "a") in events and not recorder.recording
    assert list(recorder.history.rows(b).value) == [7.0], "B's pending row was skipped"


def test_a_window_is_read_alone_and_says_whether_the_ring_still_held_its_start():
    """Issue 40, finding 3: a trigger freeze copied each channel's whole ring on the loop."""
    recorder, _ = make(capacity=100)
    a = recorder.channels[0]
    recorder.start()
    for k in range(150):  # 50 overwritten: the ring holds T+50 .. T+149
        a.on_update(Update(float(k), T + k))
    rows, held = recorder.history.window(a, T + 60, T + 70)
    assert list(rows.value) == [float(k) for k in range(60, 71)] and held
    rows, held = recorder.history.window(a, T + 40, T + 55)
    assert list(rows.value) == [float(k) for k in range(50, 56)] and not held
    copied = []
    original = a.ring.columns
    a.ring.columns = lambda newest=None: copied.append(newest) or original(newest)  # type: ignore[method-assign]
    recorder.history.window(a, T + 60, T + 70)
    assert copied == [], "the whole ring was copied"


def test_auto_channels_take_their_kind_from_the_first_update_and_a_declared_one_wins():
    import numpy as np

    recorder, events = make(channels=["S", "W", "I", "E", "L", {"pv": "N", "kind": "number"}])
    recorder.start()
    s, w, i, e, lst, n = recorder.channels
    assert all(ch.kind == "auto" for ch in (s, w, i, e, lst))
    s.on_update(Update("on", T))  # a stringout
    w.on_update(Update(np.arange(5.0), T))  # an NTScalarArray
    i.on_update(Update(np.zeros((3, 4), np.uint16), T))  # an NTNDArray's frame
    e.on_update(Update(2, T))  # an NTEnum (its index) or a CA enum
    lst.on_update(Update(["a", "b"], T))  # a string array: no kind records it
    n.on_update(Update("text", T))  # declared number: a mismatch, as before
    assert [ch.kind for ch in recorder.channels] == [
        "string",
        "waveform",
        "image",
        "number",
        "auto",
        "number",
    ]
    assert [(ev, a) for ev, a in events if ev == Event.KIND] == [
        (Event.KIND, a) for a in ("S", "W", "I", "E")
    ]
    assert list(recorder.history.rows(s).value) == ["on"]
    assert recorder.history.rows(w).value.shape == (1, 5)
    assert recorder.history.rows(i).value.shape == (1, 3, 4)
    assert list(recorder.history.rows(e).value) == [2.0]
    assert "declare one" in lst.problem and "cannot record str" in n.problem
    assert lst.dropped == 1 and n.dropped == 1 and recorder.dropped == 2
    s.on_update(Update(3.5, T + 1))  # a kind found stays: a number on a string channel
    assert s.kind == "string" and s.dropped == 1
    # the config stays as given: the Config PV and a restore find the kind again
    assert [ch.config.kind for ch in recorder.channels[:5]] == ["auto"] * 5
