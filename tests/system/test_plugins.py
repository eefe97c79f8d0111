"""A processor plugin installed while a factory runs is usable at once, without a restart.

Walkthrough 3, finding 3: an editable install (``pip install -e``) adds its path with a
``.pth`` file, which Python reads only when an interpreter starts; the factory imported
the plugin to check the Create and failed with ``ModuleNotFoundError``.

The test gives the factory an interpreter of its own (a venv whose one ``.pth`` adds the
project's environment) and installs a plugin into that venv while the factory runs,
writing what ``pip install -e`` writes: the distribution's metadata with its entry point,
and a ``.pth`` file naming the plugin's source folder.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path
from typing import Any

import pytest

from epics_collector.process import wait_for

pytestmark = pytest.mark.system

PLUGIN = """
from epics_collector.processing import Inputs, Outputs, Params, Processor


class TwiceParams(Params):
    factor: float = 2.0


class Twice(Processor[TwiceParams]):
    params_model = TwiceParams
    default_outputs = {"twice": "float64"}

    def process(self, inputs: Inputs) -> Outputs:
        return {"twice": inputs["x"].value * self.params.factor}
"""


def _venv(root: Path) -> tuple[Path, Path]:
    """A venv (no pip) that sees the project's environment; its python and site dir."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    ours = sysconfig.get_paths()["purelib"]
    (site / "project.pth").write_text(f"import site; site.addsitedir({ours!r})\n")
    return python, site


def _install_editable(site: Path, source: Path) -> None:
    """What ``pip install -e`` of a package registering processor ``twice`` writes."""
    package = source / "lab_twice"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(textwrap.dedent(PLUGIN))
    info = site / "lab_twice-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lab-twice\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[epics_collector.processors]\ntwice = lab_twice:Twice\n"
    )
    (site / "__editable__.lab_twice-0.1.pth").write_text(f"{source}\n")


def test_a_plugin_installed_while_the_factory_runs_is_created_without_a_restart(
    factory_process, sim_ioc, ctx, tmp_path
) -> None:
    python, site = _venv(tmp_path / "venv")
    # the factory's command starts with sys.executable: run it with the venv's python
    launcher = ["/bin/sh", "-c", 'shift; exec "$0" "$@"', str(python)]
    fac = factory_process(launcher=launcher)
    config: dict[str, Any] = {
        "inputs": {"x": sim_ioc.prefix + "Counter"},
        "processor": {"name": "twice", "params": {"factor": 3}},
    }
    with pytest.raises(Exception, match="unknown processor 'twice'"):
        fac.create("processing", "p", config)
    _install_editable(site, tmp_path / "plugin")
    prefix = fac.create("processing", "p", config)
    wait_for(lambda: float(ctx.get(prefix + "twice")) > 0, 20, "the plugin's output")
    counter, twice = float(ctx.get(sim_ioc.prefix + "Counter")), float(ctx.get(prefix + "twice"))
    assert twice % 3 == 0 and 0 < twice <= 3 * (counter + 5), (counter, twice)
    # a bad parameter of the new plugin is refused at Create, as any other
    bad = {**config, "processor": {"name": "twice", "params": {"factor": "lots"}}}
    with pytest.raises(Exception, match="factor"):
        fac.create("processing", "q", bad)
    assert fac.row("p")["state"] not in ("Fault", "Exited")
