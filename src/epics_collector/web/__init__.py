"""A live web dashboard of a factory's devices (extra ``epics-collector[web]``)."""

from epics_collector.web._app import make_app
from epics_collector.web._browser import CHROMIUM, CHROMIUM_ARGS, launch_chromium
from epics_collector.web._hub import Hub
from epics_collector.web._serve import ServeError, serve
from epics_collector.web._trace import Trace

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "Hub",
    "ServeError",
    "Trace",
    "launch_chromium",
    "make_app",
    "serve",
]
