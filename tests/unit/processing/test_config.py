import pytest

from epics_collector.core import ConfigError, validate_config
from epics_collector.processing import ProcessingConfig


def test_defaults_from_the_processor():
    config = validate_config(
        ProcessingConfig, {"inputs": {"a": "X"}, "processor": {"name": "stats"}}
    )
    assert set(config.outputs) == {"mean", "std", "min", "max", "median", "rms", "sum", "n"}


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"inputs": {"a": "X"}, "processor": {"name": "magic"}}, "unknown processor 'magic'"),
        (
            {"inputs": {"a": "X"}, "processor": {"name": "calc", "params": {}}},
            "expression: Field required",
        ),
        (
            {"inputs": {"a": "X"}, "processor": {"name": "calc", "params": {"expression": "a.b"}}},
            "Attribute",
        ),
        (
            {"inputs": {"a": "X"}, "processor": {"name": "calc", "params": {"expression": "b"}}},
            "unknown name 'b'",
        ),
        (
            {"inputs": {"a": "X"}, "processor": {"name": "roi", "params": {"x": -1}}},
            "x: Input should be greater",
        ),
        ({"inputs": {"a": "X"}, "processor": {"name": "stats"}, "trigger": "c"}, "trigger 'c'"),
        ({"inputs": {}, "processor": {"name": "stats"}}, "inputs"),
        ({"inputs": {"sqrt": "X"}, "processor": {"name": "stats"}}, "input name 'sqrt'"),
        (
            {
                "inputs": {"a": "X"},
                "processor": {"name": "stats"},
                "feedback": [{"output": "nope", "target": "T", "low": 0, "high": 1}],
            },
            "feedback output 'nope'",
        ),
        (
            {
                "inputs": {"a": "X"},
                "processor": {"name": "stats"},
                "feedback": [{"output": "mean", "target": "T", "low": 2, "high": 1}],
            },
            "must not exceed",
        ),
    ],
)
def test_bad_configs(config, error):
    with pytest.raises(ConfigError, match=error):
        validate_config(ProcessingConfig, config)
