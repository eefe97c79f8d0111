"""The README's first snippet, run as a new user would: twice in one directory."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from epics_collector.collector import CollectorConfig
from epics_collector.pva import Network
from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system
README = Path(__file__).parents[2] / "README.md"


def _block(language: str) -> str:
    return re.findall(rf"```{language}\n(.*?)```", README.read_text(), re.S)[0]


def test_the_readme_snippet_runs_twice_in_one_directory(network: Network, tmp_path: Path) -> None:
    script = tmp_path / "snippet.py"
    script.write_text(_block("python"))
    with SimIoc("LAB:", network.environ()):  # what the README starts first
        for _ in range(2):
            result = subprocess.run(
                [sys.executable, str(script)],
                cwd=tmp_path,
                env=network.environ(),
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=120,
            )
            assert result.returncode == 0, result.stderr
            samples, path = re.fullmatch(r"(\d+) samples in (\S+)\n", result.stdout).groups()  # type: ignore[union-attr]
            assert int(samples) > 0 and Path(path).is_file()
    assert len(list((tmp_path / "epics-collector-data").glob("run42.*/run42.h5"))) == 1


def test_the_readme_config_is_valid() -> None:
    CollectorConfig.model_validate(yaml.safe_load(_block("yaml")))
