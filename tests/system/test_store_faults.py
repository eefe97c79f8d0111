"""The spill store never gives up intact history: damage, a full or read-only disk, deletion.

Each test makes its fault itself: bytes overwritten in the database, a small tmpfs that
is filled or remounted read-only (skipped where mounting is not permitted), files
deleted while the collector records.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from p4p.client.thread import Context
from p4p.nt import NTURI
from tests.system.test_disk_full import fill

from epics_collector.process import DeviceProcess, wait_for
from epics_collector.pva import Network
from epics_collector.storage import Columns, SpillStore

pytestmark = pytest.mark.system
T0 = 1.7e9
CHUNKS, PER_CHUNK = 300, 100


def _history(data: Path, alias: str = "a") -> int:
    """A spill store of CHUNKS flushes of PER_CHUNK rows of ``alias``; the rows."""
    store = SpillStore(data / "spill" / "history.sqlite")
    zeros = np.zeros(PER_CHUNK, np.int8)
    for i in range(CHUNKS):
        times = T0 + i * PER_CHUNK + np.arange(PER_CHUNK, dtype=float)
        store.write([(alias, Columns(times, times - T0, zeros, zeros))], {"count": 0})
    store.close()
    return CHUNKS * PER_CHUNK


def _damage_a_page(path: Path) -> None:
    """Overwrite the 4 KiB page in the middle of a database file."""
    damaged = bytearray(path.read_bytes())
    middle = len(damaged) // 2 // 4096 * 4096
    damaged[middle : middle + 4096] = b"\xa5" * 4096
    path.write_bytes(bytes(damaged))


def _config(prefix: str) -> dict[str, Any]:
    return {"channels": [{"pv": f"{prefix}nosource", "alias": "a"}], "persist": True}


def _held(raw: Context, prefix: str, alias: str = "a") -> int:
    uri = NTURI([("alias", "s"), ("operator", "s"), ("points", "s")]).wrap(
        prefix + "Query", kws={"alias": alias, "operator": "count", "points": "1"}
    )
    table = cast(Any, raw.rpc(prefix + "Query", uri, timeout=10))
    return int(np.sum(table["value"]["value"]))


def _get(raw: Context, pv: str, field: str = "value") -> Any:
    return cast(Any, raw.get(pv))[field]


def _state(raw: Context, prefix: str) -> str:
    state = _get(raw, prefix + "State")
    return state["choices"][state["index"]]


def _push(raw: Context, prefix: str, stamp: float) -> None:
    uri = NTURI([("channel", "s"), ("value", "s"), ("time", "s")]).wrap(
        prefix + "Push", kws={"channel": "p", "value": "1", "time": repr(stamp)}
    )
    raw.rpc(prefix + "Push", uri, timeout=10)


def test_a_damaged_page_keeps_every_readable_chunk_and_records_on(
    device_process, prefix, raw, tmp_path
) -> None:
    data = tmp_path / "data"
    rows = _history(data)
    path = data / "spill" / "history.sqlite"
    _damage_a_page(path)
    device_process("collector", prefix, _config(prefix))
    wait_for(lambda: _held(raw, prefix) > 0, 30, "the salvaged history")
    held = _held(raw, prefix)
    assert 0 < rows - held <= 4 * PER_CHUNK, f"kept {held} of {rows}"
    assert _get(raw, prefix + "Dropped") == rows - held
    message = _get(raw, prefix + "Message")
    assert "was damaged" in message and f"({rows - held} rows)" in message
    assert _get(raw, prefix + "Message", "alarm.severity") == 2
    assert _state(raw, prefix) != "Fault"
    assert list((data / "spill").glob("history.sqlite.damaged-*")), "the damaged file is kept"
    _push(raw, prefix, T0 + rows + 10)  # records on
    wait_for(lambda: _held(raw, prefix, "p") == 1, 10, "a new row")


def _history_left_in_the_log(data: Path) -> int:
    """:func:`_history` as a crash leaves it: the newest chunks only in the write-ahead log."""
    written, rows = data.with_name(data.name + ".writing"), 0
    store = SpillStore(written / "spill" / "history.sqlite")
    zeros = np.zeros(PER_CHUNK, np.int8)
    for i in range(CHUNKS // 3):  # before SQLite checkpoints (1000 pages): all in the log
        times = T0 + i * PER_CHUNK + np.arange(PER_CHUNK, dtype=float)
        store.write([("a", Columns(times, times - T0, zeros, zeros))], {"count": 0})
        rows += PER_CHUNK
    (data / "spill").mkdir(parents=True)
    for name in ("history.sqlite", "history.sqlite-wal", "history.sqlite.commits"):
        shutil.copyfile(written / "spill" / name, data / "spill" / name)  # not closed: a crash
    store.close()
    return rows


@pytest.mark.parametrize("damage", ["overwritten", "truncated"])
def test_a_damaged_write_ahead_log_is_said_and_counted_exactly(
    device_process, prefix, raw, tmp_path, damage
) -> None:
    """Campaign 3, finding 6 (the WAL case): the rows a damaged log lost are said, MAJOR."""
    data = tmp_path / "data"
    rows = _history_left_in_the_log(data)
    wal = data / "spill" / "history.sqlite-wal"
    assert wal.stat().st_size > 100_000, "the test needs rows in the log"
    log = bytearray(wal.read_bytes())
    half = len(log) // 2
    if damage == "truncated":
        wal.write_bytes(bytes(log[:half]))
    else:
        log[half : half + 4096] = b"\xa5" * 4096
        wal.write_bytes(bytes(log))
    device_process("collector", prefix, _config(prefix))
    wait_for(lambda: _held(raw, prefix) > 0, 30, "the history that is left")
    held = _held(raw, prefix)
    assert 0 < held < rows, f"kept {held} of {rows}"
    assert _get(raw, prefix + "StoreDamage") == rows - held
    assert _get(raw, prefix + "StoreDamage", "alarm.severity") == 2
    message = _get(raw, prefix + "Message")
    assert f"lacks its newest {rows - held} rows" in message, message
    assert _get(raw, prefix + "Message", "alarm.severity") == 2
    _push(raw, prefix, T0 + rows + 10)  # records on, and the news does not hide the loss
    wait_for(lambda: _held(raw, prefix, "p") == 1, 10, "a new row")
    assert "lacks its newest" in _get(raw, prefix + "Message")


def _device(network: Network, prefix: str, data: Path) -> DeviceProcess:
    return DeviceProcess("collector", prefix, _config(prefix), env=network.environ(), data_dir=data)


def test_a_full_disk_at_restart_keeps_the_history_and_writes_when_freed(
    small_disk, network, prefix, raw
) -> None:
    data = small_disk / "data"
    rows = _history(data)
    filler = fill(small_disk)
    (data / "spill" / "history.sqlite-shm").unlink(missing_ok=True)  # made again at open
    with _device(network, prefix, data):
        _full_disk_checks(raw, prefix, data, rows, filler)


def _full_disk_checks(raw: Context, prefix: str, data: Path, rows: int, filler: Path) -> None:
    wait_for(lambda: _held(raw, prefix) == rows, 30, "the history read without writing")
    wait_for(lambda: _get(raw, prefix + "Message", "alarm.severity") == 2, 10, "MAJOR")
    assert "history" in _get(raw, prefix + "Message")  # cannot be written / failed
    assert not list((data / "spill").glob("*.damaged-*")), "an intact file was moved aside"
    _push(raw, prefix, T0 + rows + 10)  # waits in memory
    filler.unlink()
    path = data / "spill" / "history.sqlite"
    wait_for(lambda: _rows_on_disk(path) == rows + 1, 20, "the waiting row written")
    assert _get(raw, prefix + "Dropped") == 0


def test_a_read_only_data_dir_at_start_serves_the_history(small_disk, network, prefix, raw) -> None:
    data = small_disk / "data"
    rows = _history(data)
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    with _device(network, prefix, data):
        wait_for(lambda: _held(raw, prefix) == rows, 30, "the history read without writing")
        assert _get(raw, prefix + "Message", "alarm.severity") == 2
        assert "history" in _get(raw, prefix + "Message")  # cannot be written / failed
        assert _state(raw, prefix) == "Idle"


def test_a_database_deleted_while_recording_is_written_again(
    device_process, prefix, raw, tmp_path
) -> None:
    data = tmp_path / "data"
    device_process("collector", prefix, _config(prefix))
    for i in range(50):
        _push(raw, prefix, T0 + i)
    spill = data / "spill"
    store = spill / "history.sqlite"
    wait_for(lambda: store.exists() and _rows_on_disk(store) == 50, 10, "the first flush")
    for name in ("history.sqlite", "history.sqlite-wal", "history.sqlite-shm"):
        (spill / name).unlink(missing_ok=True)
    for i in range(50, 60):
        _push(raw, prefix, T0 + i)
    wait_for(lambda: "was deleted" in _get(raw, prefix + "Message"), 10, "the deletion noticed")
    wait_for(lambda: store.exists() and _rows_on_disk(store) == 60, 10, "every row written")


def _rows_on_disk(path: Path) -> int:
    """Rows in a store the device has open (read only; -1 while it cannot be read)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            (rows,) = db.execute("SELECT coalesce(sum(rows), 0) FROM chunks").fetchone()
        return int(rows)
    except sqlite3.Error:
        return -1


def test_store_damage_is_held_in_message_counted_and_shown_by_the_factory(
    factory_process, raw, tmp_path
) -> None:
    """Campaign 3, finding 6: the loss was in Dropped, but Message said NO_ALARM."""
    fac = factory_process()
    prefix = fac.create("collector", "d", _config(fac.prefix + "d:"))
    fac.stop()
    data = fac.data_dir / "d"
    for name in ("history.sqlite", "history.sqlite-wal", "history.sqlite-shm"):
        (data / "spill" / name).unlink(missing_ok=True)
    rows = _history(data)
    path = data / "spill" / "history.sqlite"
    _damage_a_page(path)
    fac.start()
    wait_for(lambda: _held(raw, prefix) > 0, 30, "the salvaged history")
    lost = rows - _held(raw, prefix)
    assert lost > 0 and _get(raw, prefix + "StoreDamage") == lost
    assert _get(raw, prefix + "StoreDamage", "alarm.severity") == 2
    # held: later news (a push makes a channel, said NO_ALARM) does not replace it
    _push(raw, prefix, T0 + rows + 10)
    wait_for(lambda: _held(raw, prefix, "p") == 1, 10, "the pushed row")
    message = _get(raw, prefix + "Message")
    assert "was damaged" in message and _get(raw, prefix + "Message", "alarm.severity") == 2
    wait_for(lambda: "was damaged" in fac.row("d")["message"], 10, "the Devices row says it")
    raw.put(prefix + "AckDamage", 1)
    wait_for(lambda: "acknowledged" in _get(raw, prefix + "Message"), 10, "acknowledged")
    assert _get(raw, prefix + "StoreDamage") == lost  # still counted, no longer MAJOR
    assert _get(raw, prefix + "StoreDamage", "alarm.severity") == 1
    wait_for(lambda: "was damaged" not in fac.row("d")["message"], 10, "the row cleared")
