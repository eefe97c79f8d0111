"""The Python client: the DESIGN.md snippet against a local and a remote factory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import FactoryHandle

from epics_collector import AsyncFactory, Factory
from epics_collector.client import (
    AsyncCollector,
    ClientError,
    DeviceError,
    NoConnectionError,
)
from epics_collector.process import wait_until
from epics_collector.pva import Network
from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system


@contextmanager
def _factory(
    how: str, network: Network, tmp_path: Path, start: Callable[..., FactoryHandle]
) -> Iterator[Factory]:
    if how == "local":
        with Factory.local("TLOCAL:FAC:", data_dir=tmp_path / "local", network=network) as fac:
            yield fac
    else:
        handle = start()
        with Factory.connect(handle.prefix, network=network) as fac:
            yield fac


@pytest.mark.parametrize("how", ["local", "remote"])
def test_the_design_snippet(
    how: str,
    network: Network,
    tmp_path: Path,
    sim_ioc: SimIoc,
    factory_process: Callable[..., FactoryHandle],
) -> None:
    pressure, temp = sim_ioc.prefix + "Pressure", sim_ioc.prefix + "Temperature"
    upload = {"kind": "directory", "target": str(tmp_path / "share")}
    (tmp_path / "share").mkdir()
    with _factory(how, network, tmp_path, factory_process) as fac:
        col = fac.create_collector(
            "run42", channels=[pressure, temp], capacity=100_000, upload=upload
        )
        col.start()
        assert wait_until(lambda: col.count() >= 6, 10)
        col.stop()
        assert col.state() == "Stopped"
        h = col.history(pressure)  # by PV name, or by alias
        time_, value, severity, status = h
        assert value is not None
        assert len(time_) == len(value) == len(severity) == len(status) >= 3
        assert np.all(np.diff(time_) >= 0) and value.dtype == np.float64
        assert col.history(col.channels()["alias"][0]).time.shape == time_.shape
        path = col.export("run42.h5")
        assert path.endswith("run42.h5")
        assert "uploaded run42.h5" in col.upload()
        assert (tmp_path / "share" / "run42.h5").exists()
        assert [d.name for d in fac.devices()] == ["run42"]
        assert fac.devices()[0].state == "Stopped" and fac.devices()[0].pid > 0
        fac.destroy("run42")
        assert fac.devices() == []


def test_processor_proxy_and_errors(network: Network, tmp_path: Path, sim_ioc: SimIoc) -> None:
    with Factory.local("TPROC:FAC:", data_dir=tmp_path, network=network) as fac:
        proc = fac.create_processor(
            "double",
            inputs={"a": sim_ioc.prefix + "Counter"},
            processor="calc",
            params={"expression": "a * 2"},
        )
        assert proc.output_names() == ["result"]
        assert wait_until(lambda: proc.outputs()["result"] > 0, 10)
        assert proc.params()["expression"] == "a * 2"
        proc.set_param("expression", "a * 3")
        values = []
        for value in proc.monitor("result"):
            values.append(value)
            if len(values) == 3:
                break
        counter = fac.device("double").get("Count")
        assert counter > 0
        proc.disable()
        assert proc.get("Enable") == 0
        with pytest.raises(DeviceError) as refused:
            proc.set_param("expression", "a +")
        assert "expression" in str(refused.value) and refused.value.message
        with pytest.raises(DeviceError, match="a device named 'double' exists already"):
            fac.create_processor("double", inputs={"a": "X"}, processor="calc")
        with pytest.raises(DeviceError, match="unknown processor"):
            fac.create_processor("bad", inputs={"a": "X"}, processor="nope")
        with pytest.raises(ClientError, match="no device named 'missing'"):
            fac.device("missing")


def test_connect_to_nothing_names_the_pv(network: Network) -> None:
    with pytest.raises(NoConnectionError, match="NOBODY:FAC:Types: no answer within 0.5 s"):
        Factory.connect("NOBODY:FAC:", network=network, timeout=0.5)


def test_the_asyncio_api(network: Network, tmp_path: Path, sim_ioc: SimIoc) -> None:
    async def main() -> tuple[int, str]:
        async with await AsyncFactory.local(
            "TASYNC:FAC:", data_dir=tmp_path, network=network
        ) as fac:
            col = await fac.create_collector(
                "a", channels=[{"pv": sim_ioc.prefix + "Counter", "alias": "n"}], autostart=True
            )
            assert isinstance(col, AsyncCollector)
            count = col.prefix + "Count"
            # waits ride on a monitor: a value that holds already returns at once ...
            first = await fac.connection.wait_for_value(count, lambda n: n >= 0, 1.0)
            assert isinstance(first, int) and 0 <= first <= await fac.connection.get(count)
            await fac.connection.wait_for_value(count, lambda n: n >= 3, 10.0)  # ... or later
            with pytest.raises(NoConnectionError, match=r"Count: still \d+ after 0.3 s"):
                await fac.connection.wait_for_value(count, lambda n: n < 0, 0.3)
            await col.wait_until("Recording", 1.0)
            with pytest.raises(
                TimeoutError, match="State: still 'Recording' after 0.3 s, not 'Stopped'"
            ):
                await col.wait_until("Stopped", 0.3)
            await col.annotate("hello")
            notes = await col.annotations()
            return len((await col.history("n")).time), str(notes["text"][0])

    samples, note = asyncio.run(main())
    assert samples >= 3 and note == "hello"


def test_a_closed_client_says_so(network: Network, tmp_path: Path) -> None:
    fac = Factory.local("TCLOSED:FAC:", data_dir=tmp_path, network=network)
    fac.close()
    fac.close()  # twice is fine
    with pytest.raises(ClientError, match="this client is closed"):
        fac.devices()


def test_local_factories_start_fresh_unless_restore(network: Network, tmp_path: Path) -> None:
    """The same script twice in one directory: the second run creates the same name again."""
    data = tmp_path / "data"
    for run in range(2):
        with Factory.local("TFRESH:FAC:", data_dir=data, network=network) as fac:
            assert fac.devices() == []
            counter = fac.create("counter", "run42", {})
            counter.put("Start", 1)
            assert wait_until(lambda c=counter: c.get("Count") > 0, 10)
            if run:  # the earlier run42's files were moved aside, and it says where
                message = fac.device_at("TFRESH:FAC:").get("Message")
                assert "earlier run42's files are in run42." in message, message
            with pytest.raises(DeviceError, match="Destroy it first, or use another name"):
                fac.create("counter", "run42", {})
        (data / "run42" / "export.nxs").write_text(f"run {run}")  # a counter writes none
    earlier = list(data.glob("run42.*"))
    assert len(earlier) == 1 and (earlier[0] / "export.nxs").read_text() == "run 0"
    assert (data / "run42" / "export.nxs").read_text() == "run 1"
    with Factory.local("TFRESH:FAC:", data_dir=data, network=network, restore=True) as fac:
        assert [d.name for d in fac.devices()] == ["run42"]
