"""The simulated source IOC: a real EPICS 7 IOC serving every record tests rely on."""

import time

import pytest

from epics_collector.sim import IMAGE_HEIGHT, IMAGE_WIDTH

pytestmark = pytest.mark.system


def test_records_exist_with_expected_shapes(sim_ioc, ctx):
    p = sim_ioc.prefix
    assert len(ctx.get(p + "Waveform")) == 1000
    assert ctx.get(p + "Image:Width") == IMAGE_WIDTH
    assert ctx.get(p + "Image:Height") == IMAGE_HEIGHT
    assert len(ctx.get(p + "Image:ArrayData")) == IMAGE_WIDTH * IMAGE_HEIGHT
    assert ctx.get(p + "Temperature").raw.display.units == "degC"
    assert ctx.get(p + "Compressed").raw.getID() == "epics:nt/NTScalar:1.0"
    assert ctx.get(p + "BeamOn").raw.getID() == "epics:nt/NTEnum:1.0"


def test_counter_runs_at_10_hz(sim_ioc, ctx):
    first = ctx.get(sim_ioc.prefix + "Counter")
    time.sleep(1.0)
    assert 7 <= ctx.get(sim_ioc.prefix + "Counter") - first <= 13


def test_setpoint_readback_first_order(sim_ioc, ctx):
    p = sim_ioc.prefix
    ctx.put(p + "Setpoint", 50.0)
    time.sleep(0.35)
    partial = ctx.get(p + "Readback")
    time.sleep(2.5)
    settled = ctx.get(p + "Readback")
    assert 0 < partial < 50
    assert settled == pytest.approx(50.0, abs=0.5)


def test_spot_moves_in_the_image(sim_ioc, ctx):
    p = sim_ioc.prefix
    image = ctx.get(p + "Image:ArrayData").reshape(IMAGE_HEIGHT, IMAGE_WIDTH)
    row, col = divmod(int(image.argmax()), IMAGE_WIDTH)
    spot_x, spot_y = ctx.get(p + "Image:SpotX"), ctx.get(p + "Image:SpotY")
    # the spot PVs are put right after the image: allow one frame of motion
    assert abs(col - spot_x) < 4 and abs(row - spot_y) < 4


def test_compress_record_averages_temperature(sim_ioc, ctx):
    p = sim_ioc.prefix
    time.sleep(1.2)  # N=10 at 10 Hz: at least one average
    average = ctx.get(p + "Compressed")
    assert 17.5 < average < 22.5
    assert ctx.get(p + "Compressed.N") == 10
