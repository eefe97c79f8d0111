import pytest

from epics_collector.core import UnknownDeviceTypeError, device_type_names, load_device_type
from epics_collector.devices.counter import Counter


def test_builtin_types_come_from_entry_points():
    assert "counter" in device_type_names()
    assert load_device_type("counter") is Counter


def test_unknown_type_lists_registered():
    with pytest.raises(UnknownDeviceTypeError, match="registered: .*counter"):
        load_device_type("nope")
