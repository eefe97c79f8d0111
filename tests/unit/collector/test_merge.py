"""The reorder buffer of merged channels, and a recorder channel fed by several sources."""

from __future__ import annotations

import numpy as np

from epics_collector.collector import CollectorConfig, Recorder
from epics_collector.collector._merge import Merger
from epics_collector.core import Update


def test_updates_come_out_in_time_order_after_the_window():
    merger = Merger(window=1.0)
    assert merger.push(Update(1.0, 10.0)) == []
    assert merger.push(Update(2.0, 10.5)) == []  # newest 10.5: nothing 1 s older yet
    out = merger.push(Update(3.0, 9.8))  # a late, older update from another source
    assert out == []
    out = merger.push(Update(4.0, 11.6))
    assert [u.timestamp for u in out] == [9.8, 10.0, 10.5]
    assert len(merger) == 1
    assert [u.timestamp for u in merger.release(13.0)] == [11.6]


def test_flush_returns_everything_in_order_and_ties_keep_arrival_order():
    merger = Merger(window=5.0)
    for value, stamp in ((1, 3.0), (2, 1.0), (3, 3.0), (4, 2.0)):
        merger.push(Update(float(value), stamp))
    assert [u.value for u in merger.flush()] == [2.0, 4.0, 1.0, 3.0]
    assert len(merger) == 0


def test_a_merged_channel_records_two_interleaved_sources_in_order():
    config = CollectorConfig.model_validate(
        {"channels": [{"pv": "A", "alias": "m", "merge": ["B"], "merge_window": 0.2}]}
    )
    recorder = Recorder(config, lambda event, channel: None)
    channel = recorder.channels[0]
    other = channel.merged_source(0)
    recorder.start()
    stamps = np.arange(100) * 0.01 + 1.7e9
    # even frames from A, odd from B, B always 3 frames late
    order = []
    for i in range(0, 100, 2):
        order.append((channel, i))
        if i >= 6:
            order.append((other, i - 5))
    order += [(other, i) for i in range(95, 100, 2)]
    for listener, i in order:
        listener.on_update(Update(float(i), float(stamps[i])))
    recorder.stop()
    rows = recorder.history.rows(channel)
    assert list(rows.value) == [float(i) for i in range(100)]
    assert np.all(np.diff(rows.time) > 0)
