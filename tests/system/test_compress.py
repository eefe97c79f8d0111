"""Compression equals what a real EPICS compress record computes on the same inputs."""

import math
import time

import numpy as np
import pytest
from tests.conftest import wait_published

from epics_collector.process import wait_for, wait_until

pytestmark = pytest.mark.system

IOC_ALGORITHMS = {
    "mean": "N to 1 Average",
    "min": "N to 1 Low Value",
    "max": "N to 1 High Value",
}  # the record's median of scalar inputs is the average: see the array test below


@pytest.mark.parametrize("n", [2, 5, 10])
@pytest.mark.parametrize("algorithm", list(IOC_ALGORITHMS))
def test_n_to_1_matches_the_ioc_compress_record(sim_ioc, collector, prefix, ctx, n, algorithm):
    p = sim_ioc.prefix
    ctx.put(p + "CompressOut.ALG", IOC_ALGORITHMS[algorithm])
    ctx.put(p + "CompressOut.N", n)
    ctx.put(p + "CompressOut.RES", 1)  # the IOC's groups start with our first input too
    collector(
        {
            "channels": [
                {
                    "pv": p + "CompressIn",
                    "alias": "ours",
                    "compress": {"algorithm": algorithm, "n": n},
                },
                {"pv": p + "CompressOut", "alias": "ioc"},
            ]
        }
    )
    assert wait_until(
        lambda: ctx.get(prefix + "ours:Connected") and ctx.get(prefix + "ioc:Connected"), 10
    )
    ctx.put(prefix + "Start", 1)
    inputs = np.random.default_rng(n).normal(20.0, 3.0, 3 * n + n // 2)  # and a partial group
    started = math.inf  # the IOC's time of our first input: its outputs come after it
    for value in inputs:
        ctx.put(p + "CompressIn", float(value))
        started = min(started, ctx.get(p + "CompressIn").timestamp)
        time.sleep(0.003)  # distinct timestamps
    # the IOC's 3 outputs, and ours
    wait_for(lambda: sum(ctx.get(prefix + "ioc:Time") >= started) == 3, 5, "the IOC's outputs")
    wait_for(lambda: len(ctx.get(prefix + "ours:Time")) >= 3, 5, "our outputs")
    ctx.put(prefix + "Stop", 1)
    wait_published(ctx, prefix, "ours", "ioc")
    ours = dict(zip(ctx.get(prefix + "ours:Time"), ctx.get(prefix + "ours:Value"), strict=True))
    ioc = {
        t: v
        for t, v in zip(ctx.get(prefix + "ioc:Time"), ctx.get(prefix + "ioc:Value"), strict=True)
        if t >= started
    }
    assert len(ioc) == 3, f"the IOC made {len(ioc)} outputs"
    assert sorted(ours) == sorted(ioc), "group boundaries differ"
    for t, value in ioc.items():
        assert ours[t] == pytest.approx(value, abs=1e-9), f"{algorithm} N={n} at {t}"


@pytest.mark.parametrize("n", [2, 5, 10])
def test_median_matches_the_ioc_compress_record_of_an_array(sim_ioc, collector, prefix, ctx, n):
    """The record computes a real median only for array inputs: feed it the same values."""
    p = sim_ioc.prefix
    inputs = np.random.default_rng(100 + n).normal(20.0, 3.0, 3 * n)
    ctx.put(p + "CompressArrayOut.N", n)
    ctx.put(p + "CompressArrayOut.RES", 1)
    ctx.put(p + "CompressArrayIn", inputs)
    ioc = ctx.get(p + "CompressArrayOut")
    collector(
        {
            "channels": [
                {
                    "pv": p + "CompressIn",
                    "alias": "ours",
                    "compress": {"algorithm": "median", "n": n},
                }
            ]
        }
    )
    assert wait_until(lambda: ctx.get(prefix + "ours:Connected"), 10)
    ctx.put(prefix + "Start", 1)
    for value in inputs:
        ctx.put(p + "CompressIn", float(value))
        time.sleep(0.003)  # distinct timestamps
    wait_for(lambda: len(ctx.get(prefix + "ours:Time")) >= 3, 5, "our outputs")
    ctx.put(prefix + "Stop", 1)
    wait_published(ctx, prefix, "ours")
    ours = ctx.get(prefix + "ours:Value")
    assert len(ioc) == 3 and len(ours) == 3
    assert np.allclose(ours, ioc, rtol=0, atol=1e-9), (ours, ioc)
