import asyncio
from enum import StrEnum

import pytest

from epics_collector.core import (
    AttrR,
    AttrRW,
    Device,
    DeviceConfig,
    DevicePv,
    Float,
    Int,
    Part,
    PutError,
    RpcError,
    Severity,
    command,
    declared_rows,
    pv_name,
    rpc,
    scan,
)


class ExampleConfig(DeviceConfig):
    gain: float = 1.0


class Example(Device[ExampleConfig]):
    config_model = ExampleConfig

    value = AttrR(Float(units="V"), description="A reading")
    limit = AttrRW(Int(low=0, high=10), description="A limit")
    runs = 0

    @command(description="Do it")
    async def do_it(self) -> None:
        self.runs += 1

    @command()
    async def explode(self) -> None:
        raise RuntimeError("boom")

    @rpc()
    async def add(self, a: str, b: str) -> str:
        return str(float(a) + float(b))

    @limit.on_put
    async def _limit_put(self, value: int) -> None:
        if value == 7:
            raise ValueError("seven is unlucky")

    @scan(0.01)
    async def _tick(self) -> None:
        self.value.set(self.value.value + self.config.gain)

    def create_dynamic_pvs(self) -> None:
        self.extra = self.add_pv(AttrR(Int(), name="ch1:Count"))


def test_pv_name_rule():
    assert pv_name("export_path") == "ExportPath"
    assert pv_name("heartbeat") == "Heartbeat"


def test_declared_and_common_pvs():
    device = Example({})
    assert set(device.pvs) == {
        "PVI",
        "State",
        "Message",
        "Config",
        "Heartbeat",
        "Refused",
        "Value",
        "Limit",
        "DoIt",
        "Explode",
        "ch1:Count",
    }
    assert set(device.rpcs) == {"Add"}
    assert device.state.value == "Idle"
    assert device.config_json.value == '{"gain":1.0}'


def test_instances_do_not_share_values():
    a, b = Example({}), Example({})
    a.value.set(3.0)
    assert b.value.value == 0.0
    assert a.pvs["Value"] is a.value


def test_command_runs_on_one_only():
    device = Example({})
    asyncio.run(device.put("DoIt", 1))
    asyncio.run(device.put("DoIt", 0))
    assert device.runs == 1
    assert device.pvs["DoIt"].value == 0


def test_bad_put_is_refused_to_its_caller_only():
    """Walkthrough 3, finding 16: a client's bad value left the device MINOR for all."""
    device = Example({})
    before = device.message.reading
    with pytest.raises(PutError, match="Limit refused: 11 is above the upper limit 10"):
        asyncio.run(device.put("Limit", 11))
    assert device.message.reading == before  # not every dashboard's news
    with pytest.raises(PutError, match="seven is unlucky"):
        asyncio.run(device.put("Limit", 7))
    assert device.limit.value == 0
    asyncio.run(device.put("Limit", 3))
    assert device.limit.value == 3


def test_failing_command_and_read_only_pv():
    device = Example({})
    with pytest.raises(PutError, match="boom"):
        asyncio.run(device.put("Explode", 1))
    with pytest.raises(PutError, match="read-only"):
        asyncio.run(device.put("Value", 1))


def test_a_bug_in_a_handler_is_logged_with_its_traceback(caplog):
    """Issue 18, finding 9: an RpcError/PutError alone left no trace of a bug."""
    device = Example({})
    with pytest.raises(PutError, match="boom"):
        asyncio.run(device.put("Explode", 1))  # RuntimeError: a bug
    with pytest.raises(RpcError, match="Add failed"):
        asyncio.run(device.call("Add", {"a": "x", "b": "2"}))  # ValueError: a refusal
    logged = [r for r in caplog.records if r.exc_info]
    assert [r.getMessage() for r in logged] == ["put to Explode"]
    assert "RuntimeError: boom" in caplog.text


def test_rpc_result_and_errors():
    device = Example({})
    assert asyncio.run(device.call("Add", {"a": "1", "b": "2"})) == "3.0"
    with pytest.raises(RpcError, match="bad arguments"):
        asyncio.run(device.call("Add", {"a": "1"}))
    with pytest.raises(RpcError, match="Add failed"):
        asyncio.run(device.call("Add", {"a": "x", "b": "2"}))
    with pytest.raises(RpcError, match="no RPC"):
        asyncio.run(device.call("Nope", {}))


def test_scans_run_while_started():
    device = Example({"gain": 2.0})

    async def life() -> None:
        await device.start()
        deadline = asyncio.get_running_loop().time() + 5
        while device.value.value < 4:
            assert asyncio.get_running_loop().time() < deadline, "the scan does not run"
            await asyncio.sleep(0.01)
        await device.stop()

    asyncio.run(life())
    ticks = device.value.value
    assert ticks >= 4 and ticks % 2 == 0


def test_states_must_include_fault():
    class NoFault(StrEnum):
        IDLE = "Idle"

    class Bad(Device[DeviceConfig]):
        States = NoFault

    with pytest.raises(TypeError, match="Fault"):
        Bad({})


def test_fault_sets_state_and_major_message():
    device = Example({})
    device.fault("source lost")
    assert device.state.value == "Fault"
    assert device.message.value == "source lost"
    assert device.message.reading.severity == Severity.MAJOR


def test_stop_lets_a_running_scan_finish_before_on_stop_closes_what_it_uses():
    """Issue 40, finding 4: on_stop ran while scans still ran (a flush could reach the
    closed store). Now scans stop first: a running one finishes, none starts after."""
    from epics_collector.core import scan
    from epics_collector.process import wait_for_async

    order: list[str] = []

    class Flushing(Example):
        @scan(0.01)
        async def flush(self) -> None:
            order.append("flush started")
            await asyncio.sleep(0.2)  # a flush under way when stop comes
            order.append("flush done")

        async def on_stop(self) -> None:
            order.append("store closed")

    async def main() -> None:
        device = Flushing({})
        await device.start()
        await wait_for_async(lambda: "flush started" in order, 5, "a flush under way")
        await device.stop()

    asyncio.run(main())
    assert order[-2:] == ["flush done", "store closed"], order
    assert order.count("flush started") == order.count("flush done")


def test_a_closed_store_refuses_a_late_write_and_keeps_its_rows(tmp_path):
    import numpy as np

    from epics_collector.storage import Columns, SpillStore, StoreClosedError

    store = SpillStore(tmp_path / "history.sqlite")
    zeros = np.zeros(3, np.int8)
    rows = Columns(np.arange(3.0) + 1.7e9, np.arange(3.0), zeros, zeros)
    store.write([("a", rows)])
    store.close()
    with pytest.raises(StoreClosedError, match="closed: a write came after stop"):
        store.write([("a", rows)])


class Counting(Part):
    """A part: its own PVs, command, RPC and scan, handled with the part as self."""

    total = AttrR(Int(), description="Counted so far")
    step = AttrRW(Int(low=1, high=5), description="Added per count")

    def __init__(self, start: int) -> None:
        self.total.set(start)  # its PVs are its own before a device serves them
        self.ticks = 0

    @command(name="CountNow")
    async def count_now(self) -> None:
        self.total.set(self.total.value + (self.step.value or 1))

    @rpc(name="CountBy")
    async def count_by(self, n: str) -> str:
        self.total.set(self.total.value + int(n))
        return str(self.total.value)

    @step.on_put
    async def _step(self, value: int) -> None:
        if value == 4:
            raise ValueError("four is not a step")

    @scan(0.01)
    async def _tick(self) -> None:
        self.ticks += 1


class Built(Device[DeviceConfig]):
    parts = (Counting,)

    def __init__(self) -> None:
        super().__init__({})
        self.counting = self.add_part(Counting(10))


def test_a_parts_pvs_rpcs_and_scans_are_served_flat_and_handled_by_the_part():
    device = Built()
    assert {"Total", "Step", "CountNow", "CountBy"} <= set(device.pvs) | set(device.rpcs)
    assert device.pvs["Total"] is device.counting.total
    assert device.pvs["Total"].value == 10

    async def run() -> None:
        await device.start()
        await device.put("Step", 2)
        await device.put("CountNow", 1)
        assert device.counting.total.value == 12
        assert await device.call("CountBy", {"n": "5"}) == "17"
        with pytest.raises(PutError, match="four is not a step"):
            await device.put("Step", 4)
        with pytest.raises(RpcError, match="bad arguments"):
            await device.call("CountBy", {"m": "1"})
        deadline = asyncio.get_running_loop().time() + 5
        while device.counting.ticks < 3:  # the part's scan runs every 10 ms
            assert asyncio.get_running_loop().time() < deadline, "the part's scan does not run"
            await asyncio.sleep(0.01)
        await device.stop()

    asyncio.run(run())
    # two devices never share a part's values
    assert Built().counting.total.value == 10


def test_a_part_type_the_device_does_not_list_is_refused():
    class Unlisted(Device[DeviceConfig]):
        pass

    with pytest.raises(TypeError, match="does not list Counting"):
        Unlisted({}).add_part(Counting(0))


def test_every_pv_a_device_type_declares_is_named_in_its_names_module():
    """Clients take PV names from the names modules: those must be the served ones."""
    from epics_collector.collector import Collector, CollectorPv
    from epics_collector.factory import Factory, FactoryPv
    from epics_collector.processing import Processing, ProcessingPv

    common = {row.name for row in declared_rows(Device)} | {"State", "PVI"}
    assert common == {str(name) for name in DevicePv}
    for cls, names in ((Collector, CollectorPv), (Processing, ProcessingPv), (Factory, FactoryPv)):
        declared = {row.name for row in declared_rows(cls, inherited=False)}
        assert declared <= {str(name) for name in names}, cls.__name__
        static = {str(name) for name in names} - {"NewType", "NewName", "NewConfig"}
        assert static == declared, cls.__name__
