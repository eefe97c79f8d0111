"""Hosts for multi-host tests: network namespaces joined by veth pairs, made by the test.

Every name carries a random tag and everything is deleted at the end; where namespaces
are not permitted the test is skipped with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from epics_collector.pva import Network

SEARCH_PORT, CA_PORT = 5076, 5064  # each namespace has its own ports


@dataclass
class Host:
    """One namespace, and the EPICS network its programs use."""

    namespace: str
    network: Network

    @property
    def launcher(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace]

    def env(self) -> dict[str, str]:
        return self.network.environ()


def ip(*args: str) -> None:
    """Run ``ip ARGS`` (raises with its message on failure)."""
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


class Namespaces:
    """Namespaces made by one test; :meth:`link` joins two with a veth pair."""

    def __init__(self) -> None:
        self.tag = uuid.uuid4().hex[:6]
        self.names: list[str] = []
        self._links = 0

    def add(self, role: str) -> str:
        name = f"ec{role}{self.tag}"
        ip("netns", "add", name)
        self.names.append(name)
        ip("-n", name, "link", "set", "lo", "up")
        return name

    def link(self, a: str, address_a: str, b: str, address_b: str) -> None:
        """A veth pair between namespaces ``a`` and ``b`` with these /24 addresses."""
        self._links += 1
        ends = [f"v{self._links}a{self.tag}", f"v{self._links}b{self.tag}"]
        ip("link", "add", ends[0], "type", "veth", "peer", "name", ends[1])
        for namespace, end, address in zip((a, b), ends, (address_a, address_b), strict=True):
            ip("link", "set", end, "netns", namespace)
            ip("-n", namespace, "addr", "add", f"{address}/24", "dev", end)
            ip("-n", namespace, "link", "set", end, "up")

    def delete(self) -> None:
        for name in self.names:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=10)


@contextlib.contextmanager
def namespaces() -> Iterator[Namespaces]:
    """A :class:`Namespaces`; skips the test where they are not permitted."""
    if shutil.which("ip") is None:
        pytest.skip("the 'ip' command (iproute2) is not installed")
    made = Namespaces()
    try:
        made.add("probe")
    except subprocess.CalledProcessError as error:
        pytest.skip(f"network namespaces are not permitted here: {error.stderr.strip()}")
    try:
        yield made
    finally:
        made.delete()


def run_on(
    host: Host, *command: str, timeout: float = 90, env: dict[str, str] | None = None
) -> str:
    """Run a Python command on ``host``; its standard output (fails the test on an error)."""
    done = run_python(host, *command, timeout=timeout, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def run_python(
    host: Host, *command: str, timeout: float = 90, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a Python command on ``host`` and return what happened."""
    return subprocess.run(
        [*host.launcher, sys.executable, *command],
        env={**(env or host.env()), "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
