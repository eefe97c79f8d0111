"""A factory's retention policy and disk budget, on retired recordings, over PVA and the CLI.

Before: retired recordings were kept whole until someone purged them; nothing bounded
the disk.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tests.clients.retrieval import Service
from tests.clients.run import aapy_decode
from tests.conftest import FactoryHandle, cli

from epics_collector.process import wait_for
from epics_collector.pva import Network
from epics_collector.sim import SimIoc
from epics_collector.storage import SPILL, Columns, SpillStore, describe

pytestmark = pytest.mark.system
StartFactory = Callable[..., FactoryHandle]
DAY = 86400.0
POLICY = """
retention:
  - match: "keep-*"
  - match: "*"
    raw: 10d
    reduce: mean_60
    keep: 30d
"""


def _retired(
    data_dir: Path, name: str, first_day: float, last_day: float, step: float
) -> np.ndarray:
    """A retired recording of ``name`` with a number and a string row every ``step`` s,
    from ``first_day`` to ``last_day`` days ago; the rows' times (each channel's)."""
    directory = data_dir / f"{name}.20250101-000000"
    now = time.time()
    t = np.arange(now - first_day * DAY, now - last_day * DAY, step)
    zeros = np.zeros(len(t), np.int8)
    store = SpillStore(directory / SPILL)
    for lo in range(0, len(t), 5000):
        part = slice(lo, lo + 5000)
        numbers = Columns(t[part], np.sin(t[part]), zeros[part], zeros[part])
        text = Columns(t[part], np.array(["x"] * len(t[part]), object), zeros[part], zeros[part])
        store.write([("T", numbers), ("Note", text)])
    store.close()
    channels = [
        {"alias": "T", "pv": f"pva://LAB:{name}:T", "kind": "number"},
        {"alias": "Note", "pv": f"LAB:{name}:Note", "kind": "string"},
    ]
    describe(directory, name=name, prefix=f"X:{name}:", channels=channels, destroyed=now)
    return t


def _recording(fac: FactoryHandle, recording: str) -> dict[str, Any]:
    table = fac.raw_get(fac.prefix + "Recordings")["value"]
    row = list(table["id"]).index(recording)
    return {name: table[name][row] for name in table.keys()}


def test_dry_run_then_apply_reduces_and_deletes_as_the_policy_says(
    factory_process: StartFactory, network: Network
) -> None:
    fac = factory_process()
    fac.stop()
    times = _retired(fac.data_dir, "rec", 40, 1, 60.0)
    rows = len(times)
    _retired(fac.data_dir, "keep-me", 40, 1, 600.0)
    fac.start(POLICY + "retention_every: 1h\n")
    wait_for(
        lambda: "rec.20250101-000000" in fac.raw_get(fac.prefix + "Recordings")["value"]["id"],
        20,
        "listed",
    )
    before = _recording(fac, "rec.20250101-000000")
    # both actions are overdue; the reduction's was due first (40 - 10 days ago)
    assert before["next_action"] == "reduce to mean_60"
    assert before["next_time"] < time.time() - 29 * DAY
    assert before["reduced"] == ""

    dry = cli("retention", "-f", fac.prefix, "--dry-run", "--json", env=fac.env)
    assert dry.returncode == 0, dry.stderr
    planned = json.loads(dry.stdout)
    assert {(a["recording"], a["channel"], a["action"]) for a in planned} == {
        ("rec.20250101-000000", "T", "delete"),
        ("rec.20250101-000000", "T", "reduce"),
        ("rec.20250101-000000", "Note", "delete"),
    }  # keep-me matches a rule without limits: kept whole
    assert _recording(fac, "rec.20250101-000000")["rows"] == 2 * rows  # nothing changed

    done = cli("retention", "-f", fac.prefix, "--json", env=fac.env)
    assert done.returncode == 0, done.stderr
    applied = json.loads(done.stdout)
    key = lambda a: (a["channel"], a["action"])  # noqa: E731
    moved = {s["before"] for s in applied} != {s["before"] for s in planned}
    # (the run is a little later: its cut-offs move on, and a minute may pass between them,
    # taking one more row of this recording; each side's rows are checked against its own
    # cut-offs below)
    drop = ("before", "rows", "written", "freed") if moved else ("before",)
    assert [{k: v for k, v in a.items() if k not in drop} for a in sorted(applied, key=key)] == [
        {k: v for k, v in a.items() if k not in drop} for a in sorted(planned, key=key)
    ]
    for steps in (planned, applied):
        (cut_off,) = {s["before"] for s in steps if s["action"] == "delete"}
        for step in steps:
            taken = times < step["before"]
            if step["action"] == "reduce":
                taken &= times >= cut_off
            assert step["rows"] == int(taken.sum()), step
    deleted = sum(a["rows"] for a in applied if a["action"] == "delete")
    reduced = sum(a["rows"] for a in applied if a["action"] == "reduce")
    (kept_from,) = {s["before"] for s in applied if s["action"] == "delete"}
    for step in applied:  # every row older than the cut-off, of either channel
        if step["action"] == "delete":
            assert step["rows"] == int((times < step["before"]).sum())
            assert abs(step["before"] - (time.time() - 30 * DAY)) < 60
        else:
            cut = step["before"]
            assert cut % 60 == 0 and abs(cut - (time.time() - 10 * DAY)) < 120
            assert step["rows"] == int(((times >= kept_from) & (times < cut)).sum())
    assert reduced and fac.raw_get(fac.prefix + "RetentionReduced")["value"] == reduced
    assert fac.raw_get(fac.prefix + "RetentionDeleted")["value"] == deleted

    def listed() -> dict[str, Any]:
        return _recording(fac, "rec.20250101-000000")

    wait_for(lambda: listed()["reduced"] == "mean_60", 20, "the listing to say reduced")
    after = listed()
    assert after["rows"] == 2 * rows - deleted - reduced + sum(a["written"] for a in applied)
    # the strings are not reduced: raw from the oldest kept row
    assert kept_from <= after["oldest_raw"] < kept_from + 60
    # each channel's next action is due within the minute (the clock moves on)
    assert after["next_action"] in ("reduce to mean_60", "delete")
    assert time.time() < after["next_time"] < time.time() + 120
    # reads of the range say they are reduced
    answer = fac.raw_rpc(
        fac.prefix + "Query",
        _uri(
            fac.prefix + "Query",
            recording="rec.20250101-000000",
            alias="T",
            start=repr(time.time() - 25 * DAY),
            end=repr(time.time() - 24 * DAY),
            points="100000",
            operator="raw",
        ),
    )["value"]
    assert list(answer["reduced"]) == ["mean_60"]
    assert np.all(np.diff(answer["time"]) == 60.0) and np.all(answer["time"] % 60 == 30)
    # the Archiver Appliance API says so too, in PB (aapy decodes it) and JSON headers
    with Service(network, "--factory", fac.prefix) as service:
        wait_for(lambda: "LAB:rec:T" in service.names(), 30, "LAB:rec:T listed")
        start, end = time.time() - 25 * DAY, time.time() - 24 * DAY
        status, body = service.data("LAB:rec:T", start, end)
        assert status == 200, body
        (chunk,) = aapy_decode(body)
        assert chunk["headers"]["reduced"] == "mean_60" and len(chunk["events"]) == 1441
        status, body = service.data("LAB:rec:T", start, end, "json")
        assert status == 200 and json.loads(body)[0]["meta"]["reduced"] == "mean_60"
        status, body = service.data("LAB:rec:T", time.time() - 5 * DAY, time.time(), "json")
        assert status == 200 and "reduced" not in json.loads(body)[0]["meta"]  # raw rows only
    # the collectors the factory runs get its policy (their rows on disk), never a client's
    with pytest.raises(Exception, match="retention comes from the factory's configuration"):
        fac.create("collector", "mine", {"channels": ["X"], "retention": [{"keep": "1s"}]})
    live = fac.create("collector", "live", {"channels": ["LAB:live:T"]})
    try:
        config = json.loads(str(fac.raw_get(live + "Config")["value"]))
        assert [r["match"] for r in config["retention"]] == ["keep-*", "*"]
        assert config["retention"][1]["reduce"] == "mean_60" and config["retention_every"] == 3600
    finally:
        fac.call("Destroy", name="live")


def _uri(name: str, **arguments: str) -> Any:
    from p4p.nt import NTURI

    return NTURI([(key, "s") for key in arguments]).wrap(name, kws=arguments)


def test_applying_needs_the_delete_right_and_a_dry_run_does_not(
    factory_process: StartFactory,
) -> None:
    fac = factory_process(POLICY + 'access: {delete: ["10.99.0.0/16"]}\n')
    dry = cli("retention", "-f", fac.prefix, "--dry-run", env=fac.env)
    assert dry.returncode == 0, dry.stderr
    refused = cli("retention", "-f", fac.prefix, env=fac.env)
    assert refused.returncode != 0
    assert "access.delete" in refused.stderr + refused.stdout


def test_the_budget_deletes_the_oldest_retired_recording_and_alarms_when_it_cannot(
    factory_process: StartFactory, sim_ioc: SimIoc
) -> None:
    fac = factory_process()
    fac.stop()
    _retired(fac.data_dir, "old", 40, 30, 60.0)  # newest row 30 days ago: goes first
    _retired(fac.data_dir, "new", 20, 1, 60.0)
    budget = _bytes(fac.data_dir) - 1000  # one must go
    fac.start(f"max_bytes: {budget}\nretention_every: 2\n")
    wait_for(lambda: _value(fac, "RetentionDeleted") > 0, 30, "the budget applied")
    assert _ids(fac) == ["new.20250101-000000"]
    recording_bytes = fac.raw_get(fac.prefix + "RecordingBytes")
    assert recording_bytes["value"] <= budget and recording_bytes["alarm"]["severity"] == 0
    fac.stop()
    # a budget only deleting a live recording could meet: the retired one goes, then alarm
    fac.start("max_bytes: 1000\nretention_every: 2\n")
    live = {"channels": [sim_ioc.prefix + "Temperature"], "autostart": True}
    fac.create("collector", "live", live)
    try:
        wait_for(lambda: _severity(fac, "RecordingBytes") == 2, 30, "the budget's alarm")
        assert _ids(fac) == ["live"]  # never deleted by the budget
        message = str(fac.raw_get(fac.prefix + "Message")["value"])
        assert "max_bytes=1000 cannot be met" in message and "live" in message
    finally:
        fac.call("Destroy", name="live")


def _bytes(directory: Path) -> int:
    return sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())


def _value(fac: FactoryHandle, name: str) -> Any:
    return fac.raw_get(fac.prefix + name)["value"]


def _severity(fac: FactoryHandle, name: str) -> int:
    return int(fac.raw_get(fac.prefix + name)["alarm"]["severity"])


def _ids(fac: FactoryHandle) -> list[str]:
    return list(_value(fac, "Recordings")["id"])


def test_a_policy_that_cannot_work_is_refused_at_start_with_the_field_named(
    tmp_path: Path,
) -> None:
    config = tmp_path / "factory.yaml"
    config.write_text("retention:\n  - raw: 30d\n    reduce: mean_60\n    keep: 2d\n")
    data = str(tmp_path / "data")
    done = cli("factory", "--prefix", "BAD:", "--config", str(config), "--data-dir", data)
    assert done.returncode != 0
    assert "retention.0" in done.stderr and "keep" in done.stderr
