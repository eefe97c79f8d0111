"""The factory's side of retention: the next action it lists, and its thread's priority."""

from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from epics_collector.core import Severity
from epics_collector.factory._config import FactoryConfig
from epics_collector.factory._recordings import LIVE, RETIRED, Listed, Recordings
from epics_collector.factory._retention import RetentionPvs, next_action
from epics_collector.process import lower_priority
from epics_collector.storage import SPILL, ChannelSummary, Columns, SpillStore, Summary, describe

DAY = 86400.0
NOW = 1.8e9


def _listed(state: str, *channels: ChannelSummary) -> Listed:
    return Listed("run.20260101-000000", "run", state, Summary(Path("."), list(channels)))


def _config(**rule: object) -> FactoryConfig:
    return FactoryConfig.model_validate({"retention": [{"match": "*", **rule}]})


def test_the_next_action_is_the_earliest_of_every_channels() -> None:
    config = _config(raw="10d", reduce="mean_60", keep="30d")
    number = ChannelSummary("T", "pva://LAB:T", "number", 100, NOW - 5 * DAY, NOW)
    text = ChannelSummary("N", "LAB:N", "string", 100, NOW - 29 * DAY, NOW)
    # the number's oldest raw row (5 days old) is reduced once its minute is 10 days old;
    # the string's oldest row goes at 30 days: in one day, sooner
    action, at = next_action(config, _listed(RETIRED, number, text), NOW)
    assert (action, at) == ("delete", NOW - 29 * DAY + 30 * DAY)
    action, at = next_action(config, _listed(RETIRED, number), NOW)
    first_minute_end = (math.floor((NOW - 5 * DAY) / 60) + 1) * 60
    assert (action, at) == ("reduce to mean_60", first_minute_end + 10 * DAY)
    # reduced rows already: the next reduction starts from the oldest raw row
    reduced = ChannelSummary(
        "T", "LAB:T", "number", 100, NOW - 20 * DAY, NOW, "mean_60", NOW - 3 * DAY
    )
    action, at = next_action(config, _listed(RETIRED, reduced), NOW)
    assert action == "reduce to mean_60" and at == pytest.approx(NOW - 3 * DAY + 60 + 10 * DAY)


def test_unmatched_channels_have_none_and_live_recordings_have_theirs() -> None:
    config = FactoryConfig.model_validate({"retention": [{"match": "OTHER:*", "keep": "1d"}]})
    channel = ChannelSummary("T", "LAB:T", "number", 10, NOW - DAY, NOW)
    assert next_action(config, _listed(RETIRED, channel), NOW)[0] == ""
    live = _config(keep="1d")  # (its collector applies it to the rows that left its ring)
    assert next_action(live, _listed(LIVE, channel), NOW) == ("delete", NOW)


def test_the_policys_thread_runs_at_the_lowest_priority() -> None:
    found: list[int] = []

    def work() -> None:
        lower_priority()
        found.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert found == [19]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != 19  # only that thread


def test_a_recording_the_policy_fails_on_is_said_and_the_others_are_done(tmp_path: Path) -> None:

    from epics_collector.core import Severity

    good, bad = tmp_path / "good.20250101-000000", tmp_path / "bad.20250101-000000"
    t = time.time() - 40 * DAY + np.arange(1000.0)  # (the factory's clock is the real one)
    zeros = np.zeros(1000, np.int8)
    store = SpillStore(good / SPILL)
    store.write([("T", Columns(t, t, zeros, zeros))])
    store.close()
    (bad / SPILL).mkdir(parents=True)  # a store that cannot be opened: a directory
    for folder in (good, bad):
        describe(folder, name=folder.name.partition(".")[0], destroyed=1.0)
    config = _config(keep="30d")
    said: list[tuple[str, Severity]] = []

    async def refresh() -> None:
        return None

    async def main() -> None:
        part = RetentionPvs(
            config, Recordings(tmp_path), dict, lambda t, s: said.append((t, s)), refresh
        )
        try:
            await part.apply(dry_run=False)
        finally:
            part.close()

    asyncio.run(main())
    assert any("bad.20250101-000000" in text and s == Severity.MAJOR for text, s in said), said
    assert any("good.20250101-000000 T: delete" in text for text, _ in said), said
