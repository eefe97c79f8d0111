"""A command starts without the build tools p4p's loader-path helper would pull in."""

from __future__ import annotations

import subprocess
import sys


def test_a_command_process_loads_p4p_without_setuptools() -> None:
    script = (
        "import sys, epics_collector.cli, p4p, pvxslibs.path, epicscorelibs.path\n"
        "from p4p.client.thread import Context\n"
        "print('setuptools' in sys.modules, 'pkg_resources' in sys.modules)\n"
        "from setuptools_dso import dylink_prepare_dso, find_dso\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]
