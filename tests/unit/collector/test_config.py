import pytest
from pydantic import ValidationError

from epics_collector.collector import CollectorConfig, default_alias
from epics_collector.core import ConfigError, validate_config


def test_shorthand_and_default_alias():
    config = CollectorConfig.model_validate({"channels": ["LAB:Temp", {"pv": "ca://LAB:P.VAL"}]})
    assert [c.alias for c in config.channels] == ["LAB_Temp", "LAB_P_VAL"]
    assert config.channels[1].pv == "ca://LAB:P.VAL"
    assert default_alias("pva://A:B-c") == "A_B-c"


@pytest.mark.parametrize(
    ("config", "error"),
    [
        ({"channels": []}, "channels: List should have at least 1 item"),
        ({}, "channels: Field required"),
        ({"channels": ["A:B", "A_B"]}, "share the alias 'A_B'"),
        (
            {"channels": ["A"], "capacity": -1},
            "capacity: Input should be greater than or equal to 1",
        ),
        ({"channels": ["A"], "mode": "loop"}, "mode: Input should be 'ring' or 'fill'"),
        ({"channels": ["xyz://A"]}, "unknown scheme 'xyz'"),
        ({"channels": ["A B"]}, "not a valid PV name"),
        ({"channels": [{"pv": "A", "alias": "a:b"}]}, "alias 'a:b' must be"),
        ({"channels": ["A"], "limits": {"duration": 0}}, "limits.duration"),
        ({"channels": ["A"], "capcity": 5}, "capcity: Extra inputs are not permitted"),
    ],
)
def test_bad_configs_name_the_problem(config, error):
    with pytest.raises(ConfigError, match=error):
        validate_config(CollectorConfig, config)


@pytest.mark.parametrize(
    ("channel", "error"),
    [
        (
            {"pv": "W", "kind": "waveform", "compress": {"algorithm": "mean", "n": 2}},
            "record every update whole",
        ),
        ({"pv": "W", "kind": "number", "shape": [2, 2]}, "shape is only for kind image"),
        ({"pv": "W", "kind": "number", "max_bytes": 10}, "max_bytes is only for"),
        (
            {"pv": "W", "kind": "string", "compress": {"algorithm": "mean", "n": 2}},
            "need kind number",
        ),
    ],
)
def test_channel_kind_rules(channel, error):
    with pytest.raises(ConfigError, match=error):
        validate_config(CollectorConfig, {"channels": [channel]})


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ({"trigger": {"pv": "B", "when": ">> 1"}}, "cannot parse condition"),
        ({"trigger": {"pv": "B", "when": "rising"}, "mode": "fill"}, "need mode ring"),
        ({"trigger": {"pv": "B", "when": "rising", "pre": 0, "post": 0}}, "more than 0"),
        (
            {
                "trigger": {"pv": "B", "when": "rising", "pre": 60, "post": 60},
                "capacity": 100,
                "channels": [{"pv": "A", "compress": {"algorithm": "periodic", "period": 1}}],
            },
            "holds 100 s",
        ),
        ({"start_when": {"pv": "B", "when": "sometimes"}}, "cannot parse condition"),
    ],
)
def test_trigger_config_errors(extra, error):
    with pytest.raises(ConfigError, match=error):
        validate_config(CollectorConfig, {"channels": ["A"], **extra})


@pytest.mark.parametrize(
    "compress",
    [{"algorithm": "periodic", "period": 1e-300}, {"algorithm": "mean", "n": 10**9}],
)
def test_numbers_that_cannot_work_are_refused(compress):
    """Issue 18: a periodic period of 1e-300 overflowed at run time; now it is refused."""
    with pytest.raises(ValidationError):
        CollectorConfig.model_validate({"channels": [{"pv": "A", "compress": compress}]})


def test_query_range_defaults_work_for_any_rows():
    from epics_collector.collector._views import parse_query

    span = (100.0, 200.0)
    whole = parse_query({}, span, "number")
    assert (whole.start, whole.end) == (100.0, 200.0)
    after = parse_query({"start": "300"}, span, "number")  # a poll past the newest row
    assert (after.start, after.end) == (300.0, 300.0)
    before = parse_query({"end": "50"}, span, "number")
    assert (before.start, before.end) == (50.0, 50.0)
    empty = parse_query({}, (0.0, 0.0), "number")
    assert (empty.start, empty.end) == (0.0, 0.0)
