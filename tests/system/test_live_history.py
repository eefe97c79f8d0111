"""A live collector's recording past its ring, and its retention policy, over PVAccess.

Before: with persist, ``capacity`` bounded the recording on disk too (the store was
cut back to the ring), so a collector kept at most ``capacity`` rows per channel
however long it ran, and the policy reached a recording only once it was retired.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from p4p.client.thread import Context
from p4p.nt import NTScalar
from p4p.server import Server, StaticProvider
from p4p.server.thread import SharedPV
from tests.conftest import call_table

from epics_collector.process import wait_for

pytestmark = pytest.mark.system
ROWS, STEP, CAPACITY = 3000, 10.0, 100
HOUR = 3600.0
POLICY = [{"match": "*", "raw": "1h", "reduce": "mean_60", "keep": "4h"}]


def _whole(raw: Context, query: str) -> dict[str, np.ndarray]:
    """Every row of channel T (Query raw)."""
    return call_table(raw, query, alias="T", start=1, end=4e9, points=10_000, operator="raw")


def _paged(raw: Context, pv: str, points: int) -> dict[str, np.ndarray]:
    pages, cursor = [], {}
    while True:
        page = call_table(
            raw, pv, alias="T", start=1, end=4e9, points=points, operator="page", **cursor
        )
        pages.append(page)
        if len(page["time"]) < points:
            return {k: np.concatenate([p[k] for p in pages]) for k in ("time", "value", "index")}
        cursor = {"epoch": int(page["epoch"][0]), "after": int(page["index"][-1])}


def test_a_live_recording_keeps_every_row_past_its_ring_and_its_policy_reduces_then_deletes(
    collector, network, prefix, raw
) -> None:
    source = prefix + "SRC"
    t0 = 1_699_999_200.0  # (on a minute: the bins of mean_60 begin at t0)
    times = t0 + STEP * np.arange(ROWS)
    pv = SharedPV(nt=NTScalar("d"))
    pv.open(-1.0, timestamp=t0 - STEP)  # the first value, older than the posts
    provider = StaticProvider("source")
    provider.add(source, pv)
    with Server(providers=[provider], conf=network.server_conf(), useenv=False):
        config = {
            "channels": [{"pv": f"pva://{source}", "alias": "T"}],
            "capacity": CAPACITY,
            "persist": True,
            "autostart": True,
            "retention": POLICY,
        }
        served = collector(config)
        device = served.device
        wait_for(lambda: device.recorder.connected == 1, 10, "the source connected")
        for n, t in enumerate(times):
            pv.post(float(n), timestamp=float(t))
        wait_for(
            lambda: raw.get(prefix + "Count")["value"] >= ROWS + 1, 20, f"{ROWS + 1} rows recorded"
        )
        query = prefix + "Query"
        ledger = device.spill.ledger
        wait_for(lambda: ledger.store.rows("T") >= ROWS + 1, 10, "every row on disk")
        whole = _whole(raw, query)
        values = list(whole["value"])
        assert len(device.recorder.channels[0].ring) == CAPACITY  # memory: the ring's
        assert values == [-1.0] + [float(n) for n in range(ROWS)]
        paged = _paged(raw, query, points=700)
        assert list(paged["value"]) == values and list(np.diff(paged["index"])) == [1] * ROWS

        def apply(now: float) -> Any:
            return served.call(device.retaining.apply(now), timeout=30)

        assert not apply(t0 + 0.5 * HOUR).steps  # nothing older than raw yet
        run = apply(t0 + 2 * HOUR)  # rows older than t0 + 1 h: bins of 60 s
        assert run.rows_reduced == 361 and run.rows_deleted == 0
        after = _whole(raw, query)
        assert str(after["reduced"][0]) == "mean_60"
        assert list(after["value"][61:]) == values[361:]  # raw from t0 + 1 h on
        means = [np.mean(values[1 + 6 * b : 7 + 6 * b]) for b in range(60)]
        assert list(after["value"][:61]) == [-1.0, *means]
        assert raw.get(prefix + "RetentionReduced")["value"] == 361
        table = raw.get(prefix + "Retention")["value"]
        assert str(table["reduced"][0]) == "mean_60" and table["reduced_until"][0] == t0 + HOUR
        assert str(table["next_action"][0]) == "reduce to mean_60"

        # applied now over PVA (t0 is long ago): every row is older than keep, all go but
        # the ring's
        steps = call_table(raw, prefix + "RetentionApply")
        assert list(steps["action"]) == ["delete"] and list(steps["channel"]) == ["T"]
        deleted = int(steps["rows"][0])
        assert deleted == 61 + 2900 - 360
        left = _whole(raw, query)
        assert list(left["value"]) == values[-CAPACITY:], "the ring's rows stay, raw"
        assert "reduced" not in left
        assert raw.get(prefix + "RetentionDeleted")["value"] == deleted
        served.close()
        # a restart restores the ring from the store: every row it kept reads the same
        again = collector({**config, "autostart": False})
        wait_for(lambda: len(again.device.recorder.channels[0].ring) == CAPACITY, 10, "restored")
        # (a new client, as an operator's: the old one's channel to the stopped server
        # would wait for pvxs's next search, seconds apart under load)
        with Context("pva", conf=network.client_conf(), useenv=False, nt=False) as fresh:
            restored = _whole(fresh, query)
        assert list(restored["value"][:-1]) == list(left["value"])
        assert np.isnan(restored["value"][-1])  # (the gap row its stop wrote)
