"""Values as text: tables show their time columns as ISO times, like ``history``."""

from __future__ import annotations

import math

from p4p.nt import NTTable

from epics_collector.pva import pv_format


def test_time_columns_of_a_table_are_iso_and_others_are_left_alone() -> None:
    table = NTTable([("alias", "s"), ("last_update", "d"), ("count", "l"), ("value", "d")])
    value = table.wrap(
        [
            {"alias": "a", "last_update": 1.7e9 + 0.25, "count": 3, "value": 1.7e9},
            {"alias": "b", "last_update": math.nan, "count": 0, "value": 2.5},
        ]
    )
    lines = pv_format.table_text(value).splitlines()
    assert lines[0].split() == ["alias", "last_update", "count", "value"]
    assert lines[1].split() == ["a", "2023-11-14T22:13:20.250000+00:00", "3", "1700000000.0"]
    assert lines[2].split() == ["b", "0", "2.5"]  # no time yet: an empty cell


def test_iso_gives_nothing_for_no_time() -> None:
    assert pv_format.iso(0.0) == "" and pv_format.iso(math.nan) == ""
    assert pv_format.iso(1.5) == "1970-01-01T00:00:01.500000+00:00"
