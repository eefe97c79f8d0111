"""The test tree's own rules: every system test module says it is one."""

from pathlib import Path

SYSTEM = Path(__file__).parent / "system"


def test_every_system_module_has_the_system_marker() -> None:
    """``-m 'not system'`` must leave out every test that starts servers."""
    unmarked = [
        path.name
        for path in sorted(SYSTEM.glob("test_*.py"))
        if "pytestmark = pytest.mark.system" not in path.read_text()
    ]
    assert not unmarked, f"add pytestmark = pytest.mark.system to {unmarked}"
