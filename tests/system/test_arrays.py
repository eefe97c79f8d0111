"""Waveforms and images recorded whole from the real sim IOC."""

import time

import numpy as np
import pytest
from p4p.client.thread import RemoteError
from tests.conftest import wait_published

from epics_collector.process import wait_for, wait_until
from epics_collector.sim import IMAGE_HEIGHT, IMAGE_WIDTH

pytestmark = pytest.mark.system


def test_waveform_for_5_s_every_update_whole(sim_ioc, collector, source_monitor, prefix, ctx):
    pv = sim_ioc.prefix + "Waveform"
    collector({"channels": [{"pv": pv, "alias": "w", "kind": "waveform"}]})
    truth = source_monitor(pv)
    assert wait_until(lambda: ctx.get(prefix + "w:Connected"), 10)
    ctx.put(prefix + "Start", 1)
    started = time.time()
    wait_for(lambda: ctx.get(prefix + "Count") >= 50, 10, "5 s of waveforms")
    ctx.put(prefix + "Stop", 1)
    stopped = time.time()
    wait_published(ctx, prefix, "w")
    value = ctx.get(prefix + "w:Value")
    times = ctx.get(prefix + "w:Time")
    assert value.shape == (len(times), 1000)
    published = [t for _, t, _ in truth.updates if started + 0.2 < t < stopped - 0.2]
    assert len(published) >= 40
    assert set(published) <= set(times), "a published waveform is missing"
    assert np.all(np.diff(times) > 0)
    assert ctx.get(prefix + "Dropped") == 0
    assert list(ctx.get(prefix + "w:Table").value.keys()) == ["time", "severity", "status"]


def test_image_frames_and_frame_index(sim_ioc, collector, prefix, ctx):
    pv = sim_ioc.prefix + "Image:ArrayData"
    image = {"pv": pv, "alias": "img", "kind": "image", "shape": [IMAGE_HEIGHT, IMAGE_WIDTH]}
    image["max_bytes"] = 20 * IMAGE_HEIGHT * IMAGE_WIDTH * 2  # 20 frames of uint16
    collector({"channels": [image]})
    assert wait_until(lambda: ctx.get(prefix + "img:Connected"), 10)
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: ctx.get(prefix + "Count") >= 25, 10, "more frames than are kept")
    ctx.put(prefix + "Stop", 1)
    wait_for(lambda: len(ctx.get(prefix + "img:Time")) >= 15, 5, "the frames kept served")
    times = ctx.get(prefix + "img:Time")
    assert 15 <= len(times) <= 20, "max_bytes bounds the frames kept"
    newest = ctx.get(prefix + "img:Frame")
    assert newest.shape == (IMAGE_HEIGHT, IMAGE_WIDTH) and newest.dtype == np.uint16
    ctx.put(prefix + "img:FrameIndex", 0)
    frame = prefix + "img:Frame"
    first = int(times[0])
    wait_for(lambda: ctx.get(frame).raw.timeStamp.secondsPastEpoch == first, 5, "frame 0")
    oldest = ctx.get(prefix + "img:Frame")
    assert not np.array_equal(oldest, newest)
    assert oldest.raw.timeStamp.secondsPastEpoch == int(times[0])
    with pytest.raises(RemoteError, match="no frame 500"):
        ctx.put(prefix + "img:FrameIndex", 500)
