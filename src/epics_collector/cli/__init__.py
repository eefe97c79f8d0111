"""The ``epics-collector`` command line."""

from epics_collector.cli import _client_commands  # noqa: F401 (registers the client commands)
from epics_collector.cli._app import app, main

__all__ = ["app", "main"]
