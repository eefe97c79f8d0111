"""Rules of the tree: system test modules say they are, p4p internals stay in one module."""

import re
from pathlib import Path

SYSTEM = Path(__file__).parent / "system"


SYSTEM_MARK = re.compile(r"^pytestmark = \[?pytest\.mark\.system\b", re.M)


def test_every_system_module_has_the_system_marker() -> None:
    """``-m 'not system'`` must leave out every test that starts servers."""
    unmarked = [
        path.name
        for path in sorted(SYSTEM.glob("test_*.py"))
        if not SYSTEM_MARK.search(path.read_text())
    ]
    assert not unmarked, f"add pytestmark = pytest.mark.system to {unmarked}"


SOURCE = Path(__file__).parent.parent / "src" / "epics_collector"
P4P_INTERNALS = re.compile(r"^\s*(from|import) p4p\.(_\w+|server\.raw|client\.raw)\b", re.M)


def test_only_the_adapter_touches_p4p_internals() -> None:
    """p4p's private API is used in ``pva/_p4p.py`` only, where each use has a test."""
    users = [
        str(path.relative_to(SOURCE))
        for path in sorted(SOURCE.rglob("*.py"))
        if P4P_INTERNALS.search(path.read_text())
    ]
    assert users == ["pva/_p4p.py"], users


ROOT = Path(__file__).parent.parent
BINARY_ALLOWED = ("tests/", "docs/images/")


def _tracked() -> list[str]:
    import shutil
    import subprocess

    import pytest

    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    return [name for name in listed.decode().split("\0") if name]


def test_no_binary_files_outside_tests_and_doc_images() -> None:
    """Walkthrough 3, finding 4: 26 MB of stale wheels had been committed at the root."""
    binary = []
    for name in _tracked():
        path = ROOT / name
        if name.startswith(BINARY_ALLOWED) or not path.is_file():
            continue
        with path.open("rb") as file:
            head = file.read(8192)
        if b"\0" in head or path.stat().st_size > 1_000_000:
            binary.append(name)
    assert not binary, f"binary or huge files in the tree: {binary}"
