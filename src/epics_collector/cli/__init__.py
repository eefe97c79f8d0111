"""The ``epics-collector`` command line."""

from epics_collector.cli import _client_commands, _pv_commands  # noqa: F401 (they register)
from epics_collector.cli._app import app, main

__all__ = ["app", "main"]
