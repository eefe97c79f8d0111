import pytest

from epics_collector.collector._conditions import Condition


@pytest.mark.parametrize(
    ("text", "values", "fires"),
    [
        ("> 0.5", [1, 0, 1, 1, 0, 0.7], [False, False, True, False, False, True]),
        ("== 1", [0, 1, 1, 2, 1], [False, True, False, False, True]),
        ("!= 0", [0, 0, 3, 4, 0, 1], [False, False, True, False, False, True]),
        ("<= -1e3", [0, -1000, -2000, 5], [False, True, False, False]),
        ("rising", [0, 1, 1, 0, 1], [False, True, False, False, True]),
        ("falling", [1, 0, 0, 1, 0], [False, True, False, False, True]),
        ("change", [0, 1, 1, 0], [False, True, False, True]),
    ],
)
def test_conditions_fire_on_edges_never_on_the_first_value(text, values, fires):
    condition = Condition(text)
    assert [condition.update(v) for v in values] == fires


def test_levels():
    assert Condition("== 1").holds(1) and not Condition("== 1").holds(0)
    assert Condition("rising").holds(1) and Condition("falling").holds(0)


@pytest.mark.parametrize("text", ["", ">> 1", "> x", "== ", "above 3", "1 <"])
def test_unparsable(text):
    with pytest.raises(ValueError, match="cannot parse condition"):
        Condition(text)
