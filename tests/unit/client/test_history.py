"""History rows as numpy arrays and as a pandas DataFrame; Value decoding."""

from __future__ import annotations

import numpy as np
from p4p import Value
from p4p.nt import NTEnum, NTScalar, NTTable

from epics_collector.client import History, decode


def test_history_unpacks_and_becomes_a_dataframe() -> None:
    t = np.array([1.0, 2.0, 3.5])
    history = History(t, t * 10, np.zeros(3, np.int8), np.array([0, 1, 0], np.int8))
    time_, value, severity, status = history
    assert value is not None and list(value) == [10.0, 20.0, 35.0]
    frame = history.to_dataframe()
    assert list(frame.columns) == ["severity", "status", "value"]
    assert frame.index.name == "time" and str(frame.index[0]) == "1970-01-01 00:00:01+00:00"
    assert frame["value"].iloc[-1] == 35.0


def test_a_waveform_history_keeps_one_array_per_row() -> None:
    rows = np.arange(6.0).reshape(3, 2)
    history = History(np.arange(3.0), rows, np.zeros(3, np.int8), np.zeros(3, np.int8))
    assert list(history.to_dataframe()["value"].iloc[1]) == [2.0, 3.0]


def test_decode() -> None:
    assert decode(NTScalar("d").wrap(2.5)) == 2.5
    enum = NTEnum().wrap({"index": 1, "choices": ["Idle", "Recording"]})
    assert decode(enum) == "Recording"
    table = NTTable(columns=[("a", "d"), ("b", "s")])
    value = Value(table.type, {"labels": ["a", "b"], "value": {"a": [1.0], "b": ["x"]}})
    decoded = decode(value)
    assert list(decoded) == ["a", "b"] and decoded["a"][0] == 1.0


def test_a_view_of_a_connection_shares_its_context_and_leaves_it_open() -> None:
    """The ophyd devices share one client context per process (issue 40)."""
    from epics_collector.client import Connection
    from epics_collector.pva import Network

    owner = Connection(Network.loopback(), timeout=5.0)
    view = owner.with_timeout(0.5)
    assert view.timeout == 0.5 and owner.timeout == 5.0
    assert view._ctx is owner._ctx  # noqa: SLF001 (no second context)
    view.close()
    assert owner.owns_context and not view.owns_context
    owner.close()
