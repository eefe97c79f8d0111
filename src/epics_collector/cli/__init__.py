"""The ``epics-collector`` command line."""

from epics_collector._startup import light_loader_helpers

light_loader_helpers()  # (before p4p is imported: see _startup)

from epics_collector.cli import _client_commands, _pv_commands  # noqa: E402, F401 (they register)
from epics_collector.cli._app import app, main  # noqa: E402

__all__ = ["app", "main"]
