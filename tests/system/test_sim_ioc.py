"""The simulated source IOC: a real EPICS 7 IOC serving every record tests rely on."""

import time

import pytest

from epics_collector.process import wait_for
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
    counter = sim_ioc.prefix + "Counter"
    first, started = ctx.get(counter), time.monotonic()
    wait_for(lambda: ctx.get(counter) >= first + 10, 5, "10 counts")
    assert 0.7 <= time.monotonic() - started <= 2.0, "not about 10 counts a second"


def test_setpoint_readback_first_order(sim_ioc, ctx):
    p = sim_ioc.prefix
    ctx.put(p + "Setpoint", 10.0)
    wait_for(lambda: abs(ctx.get(p + "Readback") - 10.0) < 0.5, 10, "settled at 10")
    seen: list[float] = []
    sub = ctx.monitor(p + "Readback", lambda v: seen.append(float(v)))
    try:
        ctx.put(p + "Setpoint", 50.0)
        wait_for(lambda: bool(seen) and abs(seen[-1] - 50.0) < 0.5, 10, "settled at 50")
    finally:
        sub.close()
    between = [v for v in seen if 12.0 < v < 48.0]
    assert len(between) >= 3, f"no first-order approach: {seen}"
    # the first values may still be settling onto 10 from above (within 0.5 of it)
    rising = seen[seen.index(min(seen)) :]
    assert rising == sorted(rising), f"the readback goes back: {seen}"
    assert max(seen) < 50.5, f"the readback overshoots: {seen}"


def test_spot_moves_in_the_image(sim_ioc, ctx):
    p = sim_ioc.prefix
    image = ctx.get(p + "Image:ArrayData").reshape(IMAGE_HEIGHT, IMAGE_WIDTH)
    row, col = divmod(int(image.argmax()), IMAGE_WIDTH)
    spot_x, spot_y = ctx.get(p + "Image:SpotX"), ctx.get(p + "Image:SpotY")
    # the spot PVs are put right after the image: allow one frame of motion
    assert abs(col - spot_x) < 4 and abs(row - spot_y) < 4


def test_compress_record_averages_temperature(sim_ioc, ctx):
    p = sim_ioc.prefix
    # N=10 at 10 Hz: an average a second
    wait_for(lambda: 17.5 < ctx.get(p + "Compressed") < 22.5, 5, "an average near 20")
    assert ctx.get(p + "Compressed.N") == 10


def test_phase_cycles_and_values_cross_their_alarm_limits(sim_ioc, ctx):
    """Phase goes round every 10 s; Temperature and Pressure follow and cross their limits."""
    p = sim_ioc.prefix
    seen: dict[str, list[tuple[float, int]]] = {"Phase": [], "Temperature": [], "Pressure": []}
    subs = [
        ctx.monitor(
            p + name,
            lambda v, name=name: seen[name].append((float(v), int(v.severity))),
            request="record[queueSize=100]",
        )
        for name in seen
    ]

    def transitions(name: str) -> int:
        severities = [s for _, s in seen[name]]
        return sum(a != b for a, b in zip(severities, severities[1:], strict=False))

    try:
        # each value changes alarm state about 4 times a cycle (one cycle: 10 s)
        wait_for(
            lambda: transitions("Temperature") >= 1 and transitions("Pressure") >= 1,
            12,
            "an alarm transition of Temperature and of Pressure",
        )
    finally:
        for sub in subs:
            sub.close()
    phases = [v for v, _ in seen["Phase"]]
    assert all(0 <= v < 6.2832 for v in phases)
    steps = [b - a for a, b in zip(phases, phases[1:], strict=False)]
    assert all(abs(s - 0.0628) < 1e-3 or s < -6.0 for s in steps), steps  # +2pi/100, or wrap
    assert all(17.5 < v < 22.5 for v, _ in seen["Temperature"])
    assert all(994 < v < 1006 for v, _ in seen["Pressure"])
