"""Python code blocks in docs/ run: documentation that cannot rot silently."""

import re
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from epics_collector.collector import CollectorConfig
from epics_collector.core import AccessPolicy
from epics_collector.factory import FactoryConfig, Setup
from epics_collector.processing import ProcessingConfig
from epics_collector.retrieval import RetrievalConfig

DOCS = Path(__file__).parent.parent / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "```python" in p.read_text())


#: ``# prints: TEXT`` in a block promises a line of its output: TEXT with any numbers.
PROMISE = re.compile(r"#\s*prints:\s*(.+?)\s*$", re.M)
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def promised(text: str) -> re.Pattern[str]:
    """A pattern of the line ``text`` promises: its words as they are, numbers as numbers."""
    words = [re.escape(part) for part in NUMBER.split(text)]
    return re.compile(NUMBER.pattern.join(words))


def test_promises_match_shapes_not_numbers() -> None:
    pattern = promised("30 samples, last 1000.42 mbar")
    assert pattern.fullmatch("7 samples, last 999.5 mbar")
    assert not pattern.fullmatch("7 samples, last  mbar")
    assert promised("LAB:FAC:c1: ['c1']").fullmatch("LAB:FAC:c1: ['c1']")
    assert not promised("LAB:FAC:c1: ['c1']").fullmatch("Thu Jan 1 00:00:00 1970 'LAB:FAC:c1:'")


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_python_blocks_run(page: Path, tmp_path: Path) -> None:
    """A page's blocks as one script, run twice in one directory as a reader would.

    Each run is a new Python process, as a reader's second run is (a client's cached
    channels do not carry over). What the script prints is compared with the lines the
    blocks' ``# prints:`` comments promise.
    """
    blocks = re.findall(r"```python\n(.*?)```", page.read_text(), re.S)
    script = tmp_path / f"docs_{page.stem}.py"  # (not bluesky.py: it would shadow bluesky)
    script.write_text("\n\n".join(blocks))
    for run in (1, 2):
        done = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,  # files the examples write land here
            capture_output=True,
            text=True,
            timeout=300,
            stdin=subprocess.DEVNULL,
        )
        assert done.returncode == 0, f"run {run}:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        printed = [line.strip() for line in done.stdout.splitlines()]
        for promise in PROMISE.findall("\n".join(blocks)):
            assert any(promised(promise).fullmatch(line) for line in printed), (
                f"run {run}: the page promises {promise!r}, it printed {printed}"
            )


SIM_RECORDS = set(
    re.findall(
        r'record\(\w+, "\$\(P\)([^"]+)"\)',
        (DOCS.parent / "src" / "epics_collector" / "sim" / "sim.db").read_text(),
    )
)
SIM_GROUPS = {name.split(":")[0] for name in SIM_RECORDS if ":" in name}  # "Image"
SOURCE_PAGES = sorted(p for p in DOCS.rglob("*.md") if "```" in p.read_text())


def _sources(block: str, language: str) -> list[str]:
    """The source PV names an example records or processes (channels, inputs, trigger)."""
    if language == "python":
        found = []
        for listed in re.findall(r"channels=\[([^\]]*)\]", block):
            found += re.findall(r'"([^"]+)"', listed)
        return found + re.findall(r'"pv":\s*"([^"]+)"', block)
    found = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "channels" and isinstance(value, list):
                    found.extend(c if isinstance(c, str) else c.get("pv", "") for c in value)
                elif key == "inputs" and isinstance(value, dict):
                    found.extend(v for v in value.values() if isinstance(v, str))
                elif key == "pv" and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(yaml.safe_load(block))
    return found


@pytest.mark.parametrize("page", SOURCE_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_example_sources_exist_on_the_sim_ioc(page: Path) -> None:
    """No example records a PV the sim IOC lacks (it would start MINOR, never connected).

    Under ``LAB:`` (``epics-collector sim-ioc --prefix LAB:``) and the prefix of every
    ``SimIoc`` the page starts, a source must be one of the sim IOC's records.
    """
    text = page.read_text()
    prefixes = {"LAB:", *re.findall(r'SimIoc\(\s*"([^"]+)"', text)}
    missing = []
    for language, block in re.findall(r"```(python|yaml)\n(.*?)```", text, re.S):
        for source in _sources(block, language):
            name = source.partition("://")[2] or source
            record = name.split(".")[0]
            for prefix in prefixes:
                rest = record[len(prefix) :] if record.startswith(prefix) else ""
                # "CAM:Image", "STATS0:mean": another server's (a camera's, a device's)
                ours = rest and (":" not in rest or rest.split(":")[0] in SIM_GROUPS)
                if ours and rest not in SIM_RECORDS:
                    missing.append(source)
    assert not missing, f"not records of the sim IOC: {missing}"


YAML_PAGES = sorted(p for p in DOCS.rglob("*.md") if "```yaml" in p.read_text())
#: How a YAML block is recognised (a top-level key), and the model that checks it; the
#: first that matches is used, and a block none matches fails: every block is checked.
MODELS: list[tuple[str, Callable[[Any], object]]] = [
    (r"^devices:", lambda config: Setup.model_validate(config).specs()),
    (r"^(max_devices|destinations|types|retention|max_bytes):", FactoryConfig.model_validate),
    (r"^channels:", CollectorConfig.model_validate),
    (r"^processor:", ProcessingConfig.model_validate),
    (r"^(max_samples|refresh|archiving|identity):", RetrievalConfig.model_validate),
    (r"^access:", lambda config: AccessPolicy.model_validate(config["access"])),
]


def _install_page_plugins(text: str, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the processors a page's TOML declares, from the page's own Python code."""
    for toml in re.findall(r"```toml\n(.*?)```", text, re.S):
        for name, module, cls in re.findall(r'^(\w+) = "([\w.]+):(\w+)"', toml, re.M):
            code = next(
                b for b in re.findall(r"```python\n(.*?)```", text, re.S) if f"class {cls}(" in b
            )
            path = root / Path(*module.split("."))
            path.parent.mkdir(parents=True, exist_ok=True)
            for package in path.relative_to(root).parents:
                if str(package) != ".":
                    (root / package / "__init__.py").touch()
            path.with_suffix(".py").write_text(code)
            info = root / f"{name}_docs-0.1.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(
                f"Metadata-Version: 2.1\nName: {name}-docs\nVersion: 0.1\n"
            )
            (info / "entry_points.txt").write_text(
                f"[epics_collector.processors]\n{name} = {module}:{cls}\n"
            )
    monkeypatch.syspath_prepend(str(root))


@pytest.mark.parametrize("page", YAML_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_yaml_block_is_valid_for_its_model(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = page.read_text()
    _install_page_plugins(text, tmp_path, monkeypatch)
    for block in re.findall(r"```yaml\n(.*?)```", text, re.S):
        body = "\n".join(line for line in block.splitlines() if not line.startswith("#"))
        check = next((c for pattern, c in MODELS if re.search(pattern, body, re.M)), None)
        assert check is not None, f"no model checks this block:\n{block}"
        check(yaml.safe_load(block))


def test_pv_tables_are_current() -> None:
    """The PV tables of the docs are what tools/pv_tables.py writes (run ``make docs``)."""
    tool = runpy.run_path(str(DOCS.parent / "tools" / "pv_tables.py"))
    stale = [str(path) for path, (now, wanted) in tool["pages"]().items() if now != wanted]
    assert not stale, f"stale PV tables in {stale}: run make docs"
    marked = sum(text.count("<!-- pv-table ") for text, _ in tool["pages"]().values())
    assert marked == len(tool["TABLES"]), "a table's markers are missing from its page"
