"""A stand-in device process for supervisor tests: says it is ready, then waits.

It serves nothing: the test plays its State and Heartbeat through in-memory sources.
It ends when its standard input closes or on SIGTERM.
"""

import sys

from epics_collector.process import READY_LINE, as_child, notify_ready

if __name__ == "__main__":
    as_child()
    notify_ready(f"{READY_LINE}: fake")
    sys.stdin.read()
