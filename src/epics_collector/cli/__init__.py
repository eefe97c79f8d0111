"""The ``epics-collector`` command line."""

from epics_collector.cli._app import app, main

__all__ = ["app", "main"]
