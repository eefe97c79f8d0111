"""Python code blocks in docs/ run: documentation that cannot rot silently."""

import re
import runpy
from pathlib import Path

import pytest
import yaml

from epics_collector.collector import CollectorConfig
from epics_collector.factory import FactoryConfig, Setup
from epics_collector.processing import ProcessingConfig

DOCS = Path(__file__).parent.parent / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "```python" in p.read_text())


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each page's blocks in order; a tutorial twice in one directory, as a reader would."""
    monkeypatch.chdir(tmp_path)  # files the examples write land here
    for _ in range(2 if page.parent.name == "tutorials" else 1):
        namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
        for block in re.findall(r"```python\n(.*?)```", page.read_text(), re.S):
            exec(compile(block, str(page), "exec"), namespace)


YAML_PAGES = sorted(p for p in DOCS.rglob("*.md") if "```yaml" in p.read_text())


@pytest.mark.parametrize("page", YAML_PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_configs_are_valid(page: Path) -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)
    for block in blocks:
        config = yaml.safe_load(block)
        if re.search(r"^devices:", block, re.M):
            Setup.model_validate(config).specs()  # each device checked against its type
        elif "max_devices:" in block:
            FactoryConfig.model_validate(config)
        elif "channels:" in block:
            CollectorConfig.model_validate(config)
        elif "processor:" in block and "scale" not in block:  # the tutorial's plugin
            ProcessingConfig.model_validate(config)


def test_api_reference_is_current() -> None:
    """docs/reference/api.md is what tools/api_reference.py writes (run ``make docs``)."""
    tool = runpy.run_path(str(DOCS.parent / "tools" / "api_reference.py"))
    assert (DOCS / "reference" / "api.md").read_text() == tool["render"](), "run: make docs"
