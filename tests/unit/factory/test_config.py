"""Factory configuration, device specs, setup files and the device-list store."""

from __future__ import annotations

from pathlib import Path

import pytest

from epics_collector.core import AccessPolicy, Caller, ConfigError, Operation
from epics_collector.factory import (
    DeviceSpec,
    DeviceStore,
    FactoryConfig,
    RestartPolicy,
    check_name,
    load_setup,
)


def test_restart_delays_double_and_are_capped() -> None:
    policy = RestartPolicy(delay=1, max_delay=5)
    assert [policy.delay_before(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


@pytest.mark.parametrize("name", ["a", "col_1", "A-b", "x" * 40])
def test_good_names(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["", "a b", "a:b", "../x", "x" * 41, "é", "a/b", "a\x00"])
def test_bad_names(name: str) -> None:
    with pytest.raises(ValueError, match="1-40 characters"):
        check_name(name)


def test_allow_hosts_is_the_factory_access_list() -> None:
    config = FactoryConfig.model_validate({"allow_hosts": ["127.0.0.1", "198.18.0.0/24", "::1"]})
    access = config.access
    assert access is not None
    assert access.allows(Operation.FACTORY, "127.0.0.1")
    assert access.allows(Operation.FACTORY, "198.18.0.7")
    assert access.allows(Operation.FACTORY, "::ffff:198.18.0.7")  # IPv4-mapped (0.0.0.0)
    assert access.allows(Operation.FACTORY, "::1")
    assert not access.allows(Operation.FACTORY, "198.18.1.1")
    assert not access.allows(Operation.FACTORY, "")
    assert not AccessPolicy().allows(Operation.FACTORY, "10.1.2.3"), "default: this host only"


def test_a_factory_config_cannot_allow_factories_or_unknown_keys() -> None:
    with pytest.raises(ValueError, match="cannot create factories"):
        FactoryConfig.model_validate({"types": ["factory"]})
    with pytest.raises(ValueError, match="extra"):
        FactoryConfig.model_validate({"max_device": 3})


@pytest.mark.parametrize(
    ("peer", "host"),
    [("127.0.0.1:5075", "127.0.0.1"), ("[::1]:5075", "::1"), ("", ""), ("10.0.0.1", "10.0.0.1")],
)
def test_caller_host(peer: str, host: str) -> None:
    assert Caller(peer=peer).host == host


def test_store_round_trip_and_bad_entries(tmp_path: Path) -> None:
    store = DeviceStore(tmp_path)
    assert store.load() == ([], [])
    spec = DeviceSpec(name="c", type="counter", prefix="F:c:", config={"step": 2})
    store.save([spec])
    assert store.load() == ([spec], [])
    store.path.write_text('{"devices": [{"name": "bad name", "type": "x", "prefix": "P:"}]}')
    specs, problems = store.load()
    assert specs == [] and "skipped an entry" in problems[0]
    store.path.write_text("{half")
    assert "cannot read" in store.load()[1][0]


def test_setup_file(tmp_path: Path) -> None:
    setup_file = tmp_path / "setup.yaml"
    setup_file.write_text(
        """
prefix: "LAB:FAC:"  # quoted: a YAML plain value cannot end with ":"
data_dir: data
factory: {max_devices: 3}
devices:
  - {name: c1, type: counter, config: {step: 2}}
  - {name: c2, type: counter, prefix: "OTHER:"}
"""
    )
    setup = load_setup(setup_file)
    assert setup.data_dir == tmp_path / "data" and setup.factory.max_devices == 3
    assert [s.prefix for s in setup.specs()] == ["LAB:FAC:c1:", "OTHER:"]


@pytest.mark.parametrize(
    ("devices", "error"),
    [
        ("[{name: c, type: nope}]", "devices.c: unknown device type 'nope'"),
        ("[{name: c, type: counter, config: {step: x}}]", "devices.c: invalid configuration"),
        ("[{name: c, type: counter}, {name: c, type: counter}]", "declared twice"),
        ("[{name: 'a b', type: counter}]", "1-40 characters"),
    ],
)
def test_bad_setup_files(tmp_path: Path, devices: str, error: str) -> None:
    setup_file = tmp_path / "setup.yaml"
    setup_file.write_text(f"prefix: 'F:'\ndevices: {devices}\n")
    with pytest.raises(ConfigError, match=error):
        load_setup(setup_file)
