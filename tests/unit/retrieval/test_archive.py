"""Which name a recording is served under, and which recordings can be served."""

from __future__ import annotations

from typing import Any, cast

import pytest

from epics_collector.retrieval._archive import (
    Archive,
    Recording,
    UnknownPvError,
    UnservedError,
    merge_streams,
)
from epics_collector.retrieval._samples import Samples


def test_a_recording_is_named_by_its_source_pv_or_its_alias() -> None:
    assert Recording("C:", "a", "pva://LAB:X", "number").name == "LAB:X"
    assert Recording("C:", "a", "ca://LAB:Y", "number").name == "LAB:Y"
    assert Recording("C:", "a", "LAB:Z", "number").name == "LAB:Z"
    assert Recording("C:", "note", "push:note", "string").name == "note"


def test_unknown_pvs_and_image_channels_are_refused_with_the_reason() -> None:
    archive = Archive(cast(Any, None))
    archive.recordings = {"CAM:Image": [Recording("C:", "img", "CAM:Image", "image")]}
    with pytest.raises(UnknownPvError, match="has recorded 'NOPE'"):
        archive.recorded("NOPE")
    with pytest.raises(UnservedError, match="image channel"):
        archive.recorded("CAM:Image")


def test_streams_merge_in_time_order_one_row_per_timestamp() -> None:
    import asyncio

    import numpy as np

    def pages(*parts: list[int]) -> Any:
        async def stream() -> Any:
            for secs in parts:
                n = len(secs)
                yield Samples(
                    np.array(secs, np.int64),
                    np.zeros(n, np.int32),
                    np.array(secs, np.float64),
                    np.zeros(n, np.int32),
                    np.zeros(n, np.int32),
                )

        return stream()

    async def run() -> list[int]:
        merged = merge_streams([pages([1, 3], [5, 7]), pages([2, 3, 4], [8]), pages()])
        return [int(s) for part in [p async for p in merged] for s in part.secs]

    assert asyncio.run(run()) == [1, 2, 3, 4, 5, 7, 8]
