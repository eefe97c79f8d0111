"""A child for the readiness tests: ``ready_child.py MODE``.

``ready``: says it is ready, then waits for its standard input to close. ``exit``:
exits with code 3 before it is ready. ``silent``: never says it is ready. ``spawn``:
starts a grandchild that prints the readiness variable it sees, then says it is ready.
"""

import subprocess
import sys

from epics_collector.process import READY_FD_ENV, as_child, notify_ready

if __name__ == "__main__":
    as_child()
    mode = sys.argv[1]
    if mode == "exit":
        sys.exit(3)
    if mode == "spawn":
        script = f"import os; print('grandchild sees', os.environ.get({READY_FD_ENV!r}))"
        subprocess.run([sys.executable, "-c", script], check=True)
    if mode != "silent":
        notify_ready(f"ready: {mode}")
    sys.stdin.read()
