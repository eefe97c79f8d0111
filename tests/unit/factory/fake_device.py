"""A stand-in device process for supervisor tests: says it is ready, then waits.

It serves nothing: the test plays its State and Heartbeat through in-memory sources.
It ends when its standard input closes or on SIGTERM.
"""

import sys

from epics_collector.process import READY_LINE

if __name__ == "__main__":
    print(f"{READY_LINE}: fake", flush=True)
    sys.stdin.read()
