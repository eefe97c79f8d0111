"""Run an independent client of ``tests/clients`` in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def aapy_decode(response: bytes) -> list[dict[str, Any]]:
    """The chunks of a PB/HTTP response as aapy decodes them (see aapy_decode.py)."""
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.clients.aapy_decode"],
        input=response,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode:
        raise AssertionError(f"aapy could not decode the response: {done.stderr.decode()[-2000:]}")
    return json.loads(done.stdout)
