"""Run an independent client of ``tests/clients`` in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any


def _run(module: str, *args: str, stdin: bytes = b"") -> Any:
    env = {**os.environ, "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION": "python"}
    done = subprocess.run(
        [sys.executable, "-m", f"tests.clients.{module}", *args],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    if done.returncode:
        raise AssertionError(f"aapy failed: {done.stderr.decode()[-2000:]}")
    return json.loads(done.stdout)


def aapy_decode(response: bytes) -> list[dict[str, Any]]:
    """The chunks of a PB/HTTP response as aapy decodes them (see aapy_decode.py)."""
    return _run("aapy_decode", stdin=response)


def aapy_fetch(port: int, pv: str, start: float, end: float, mode: str) -> dict[str, Any]:
    """A PV's history as aapy's PbFetcher (``pb``) or JsonFetcher (``json``) gets it."""
    return _run("aapy_fetch", "127.0.0.1", str(port), pv, repr(start), repr(end), mode)


def aapy_rest(port: int, *calls: str) -> list[Any]:
    """Results of aapy's AaRestClient ``calls`` (``method=json-argument``; aapy_rest.py)."""
    return _run("aapy_rest", "127.0.0.1", str(port), *calls)
