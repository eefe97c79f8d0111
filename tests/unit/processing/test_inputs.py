"""Input queues of a processing device: distribute shares, losses, triggers."""

from __future__ import annotations

from collections import Counter

from epics_collector.core import Update
from epics_collector.processing._inputs import InputTable, share_of


def test_numbered_updates_go_round_robin():
    shares = [share_of(Update(0.0, 1.0, sequence=n), 3) for n in range(9)]
    assert shares == [0, 1, 2] * 3


def test_unnumbered_updates_spread_evenly_and_the_same_in_every_process():
    stamps = [1.7e9 + 0.001 * i for i in range(3000)]  # a 1 kHz source: regular stamps
    counts = Counter(share_of(Update(0.0, t), 2) for t in stamps)
    assert 1350 <= counts[0] <= 1650, counts
    assert [share_of(Update(0.0, t), 2) for t in stamps[:10]] == [
        share_of(Update(1.0, t), 2) for t in stamps[:10]
    ], "the share depends on the timestamp only"


def test_a_device_queues_only_its_share_and_counts_losses():
    woken: list[str | None] = []
    table = InputTable({"img": "CAM"}, woken.append, share=(1, 2))
    slot = table.slots["img"]
    for n in range(6):
        slot.on_update(Update(float(n), float(n), sequence=n))
    assert [u.value for _, u in slot.pending] == [1.0, 3.0, 5.0]
    assert woken == ["img"] * 3
    slot.on_loss(4)  # a gap in uniqueId
    slot.on_loss(None)  # a queue that filled
    assert (table.skipped, table.overruns) == (4, 1)
