"""Install a processor plugin for one test: a tiny distribution on ``sys.path``."""

from __future__ import annotations

from pathlib import Path

import pytest


def install_plugin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, source: str, cls: str
) -> None:
    """Register processor ``name`` (class ``cls`` of module ``name_plugin``, ``source``).

    The device's worker process imports it too: it is started with the device's path.
    """
    module = f"{name}_plugin"
    (tmp_path / f"{module}.py").write_text(source)
    info = tmp_path / f"{module}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 0.1\n")
    entry = f"[epics_collector.processors]\n{name} = {module}:{cls}\n"
    (info / "entry_points.txt").write_text(entry)
    monkeypatch.syspath_prepend(str(tmp_path))
