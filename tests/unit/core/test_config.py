import pytest

from epics_collector.core import ConfigError, DeviceConfig, load_config


class Example(DeviceConfig):
    capacity: int = 10
    name: str = "x"


def test_defaults_from_nothing():
    assert load_config(Example, None).capacity == 10


def test_inline_json_and_yaml():
    assert load_config(Example, '{"capacity": 5}').capacity == 5
    assert load_config(Example, "capacity: 6").capacity == 6


def test_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: hello\n")
    assert load_config(Example, str(path)).name == "hello"


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read configuration file"):
        load_config(Example, str(tmp_path / "nope.yaml"))


def test_unknown_key_names_the_field():
    with pytest.raises(ConfigError, match="capacty: Extra inputs are not permitted"):
        load_config(Example, '{"capacty": 5}')


def test_bad_value_names_field_and_value():
    with pytest.raises(ConfigError, match=r"capacity: .*integer.*\(got 'lots'\)"):
        load_config(Example, '{"capacity": "lots"}')


def test_not_json_nor_yaml():
    with pytest.raises(ConfigError, match="neither JSON nor YAML"):
        load_config(Example, "{unclosed: [")
