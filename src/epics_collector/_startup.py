"""A command starts 0.2 s sooner: p4p's loader-path helper without the build tools.

p4p imports ``epicscorelibs.path``, which imports ``setuptools_dso.runtime``; Python
then runs the ``setuptools_dso`` package first, and that imports ``setuptools`` and
``pkg_resources`` (0.18 s of a 0.7 s start here), build tools a running command never
uses. :func:`light_loader_helpers` registers the package without running it, loads
only ``runtime`` (the loader-path helper, standard library only) and gives the package
the two names it re-exports from it (``pvxslibs.path`` imports one from the package).
Commands, the processes they start (devices, factories, services) and the simulators
call it before importing p4p; a process that already imported the package keeps it.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys


def light_loader_helpers() -> None:
    """Register ``setuptools_dso`` unexecuted, so importing its ``runtime`` is cheap."""
    if "setuptools_dso" in sys.modules:
        return
    try:
        spec = importlib.util.find_spec("setuptools_dso")
    except (ImportError, ValueError):
        return
    if spec is None or not spec.submodule_search_locations:
        return
    package = importlib.util.module_from_spec(spec)  # (not executed)
    sys.modules["setuptools_dso"] = package
    try:
        runtime = importlib.import_module("setuptools_dso.runtime")
    except Exception:  # an unknown layout: the normal import, slow but right
        del sys.modules["setuptools_dso"]
        sys.modules.pop("setuptools_dso.runtime", None)
        return
    for name in ("dylink_prepare_dso", "find_dso"):  # what the package re-exports of it
        setattr(package, name, getattr(runtime, name))
