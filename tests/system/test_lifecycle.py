"""One process per device, whatever the clients do (campaign 3, finding 7).

Before: five Restart RPCs at once started 4-5 processes, all writing one history.sqlite
(40-50 rows/s from a 10 Hz source), some left running after Destroy.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from p4p.nt import NTURI
from tests.conftest import FactoryHandle

from epics_collector.process import DeviceProcess, wait_for
from epics_collector.pva import Network
from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system


def _processes(prefix: str) -> int:
    """Device processes running for ``prefix`` now (by their command line)."""
    found = subprocess.run(
        ["pgrep", "-f", f"run collector --prefix {prefix}"], capture_output=True, text=True
    )
    return len(found.stdout.split())


def test_twenty_restarts_at_once_then_destroy_leave_one_process_at_a_time(
    factory_process: Callable[..., FactoryHandle], sim_ioc: SimIoc
) -> None:
    fac = factory_process()
    config = {"channels": [{"pv": sim_ioc.prefix + "Counter", "alias": "n"}], "autostart": True}
    prefix = fac.create("collector", "one", config)
    most, watching = [0], [True]

    def watch() -> None:  # how many processes at once, sampled while the clients act
        while watching[0]:
            most[0] = max(most[0], _processes(prefix))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    errors: list[str] = []
    finished: list[bool] = []

    def restart() -> None:
        try:
            fac.call("Restart", name="one")
        except Exception as error:  # a Restart after the Destroy is refused: fine
            errors.append(str(error))
        finished.append(True)

    clients = [threading.Thread(target=restart) for _ in range(20)]
    try:
        for client in clients:
            client.start()
        # the Destroy goes among the queued Restarts: once the first of them is done
        wait_for(lambda: len(finished) >= 1, 60, "a first Restart done")
        answer = fac.call("Destroy", name="one")
        for client in clients:
            client.join(120)
    finally:  # the watcher starts processes (pgrep): never leave it running
        watching[0] = False
        watcher.join()
    assert most[0] == 1, f"{most[0]} processes of one device at once"
    assert _processes(prefix) == 0, "a process outlived Destroy"
    assert all("destroyed meanwhile" in e or "no device named" in e for e in errors), errors
    # its recording, kept: no row twice (one writer at a time)
    kept = answer.rpartition("kept as ")[2].split(" ")[0]
    assert kept.startswith("one."), answer
    arguments = {"recording": kept, "alias": "n", "operator": "raw", "points": "100000"}
    request = NTURI([(k, "s") for k in arguments]).wrap(fac.prefix + "Query", kws=arguments)
    times = np.asarray(fac.raw_rpc(fac.prefix + "Query", request)["value"]["time"])
    assert len(times) > 0 and (np.diff(times) > 0).all(), "a row written twice"


def test_a_second_process_on_a_store_refuses_to_start_and_says_why(
    network: Network, tmp_path: Any, ctx: Any
) -> None:
    data = tmp_path / "data"
    config = {"channels": ["NO:SOURCE:HERE"], "persist": True}
    with DeviceProcess("collector", "LOCKA:", config, env=network.environ(), data_dir=data):
        wait_for(lambda: (data / "spill" / "history.sqlite").exists(), 10, "the first store")
        with DeviceProcess("collector", "LOCKB:", config, env=network.environ(), data_dir=data):
            wait_for(lambda: str(ctx.get("LOCKB:State")) == "Fault", 10, "the second refused")
            message = str(ctx.get("LOCKB:Message"))
            assert "written by another process" in message, message
        assert str(ctx.get("LOCKA:State")) != "Fault"
