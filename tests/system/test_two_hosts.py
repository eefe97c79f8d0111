"""Two factories on two "hosts" (network namespaces joined by a veth pair).

The client in host A creates a collector on each factory; both record the sim IOC in
host A, so the one in host B records across the veth link. Skips where namespaces are
not permitted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from epics_collector.process import FactoryProcess
from epics_collector.pva import Network
from epics_collector.sim import SimIoc

pytestmark = pytest.mark.system
ADDRESSES = ["198.18.0.1", "198.18.0.2"]  # RFC 2544 benchmarking range; stays in the namespaces
BROADCAST = "198.18.0.255"
SEARCH_PORT, CA_PORT = 5076, 5064  # each namespace has its own ports


@dataclass
class Host:
    namespace: str
    network: Network

    @property
    def launcher(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace]

    def env(self) -> dict[str, str]:
        return self.network.environ()


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@pytest.fixture
def two_hosts() -> Iterator[list[Host]]:
    """Two namespaces with a veth pair; deleted after the test."""
    if shutil.which("ip") is None:
        pytest.skip("the 'ip' command (iproute2) is not installed")
    tag = uuid.uuid4().hex[:6]
    names, links = [f"ecA{tag}", f"ecB{tag}"], [f"veA{tag}", f"veB{tag}"]
    try:
        _ip("netns", "add", names[0])
    except subprocess.CalledProcessError as error:
        pytest.skip(f"network namespaces are not permitted here: {error.stderr.strip()}")
    try:
        _ip("netns", "add", names[1])
        _ip("link", "add", links[0], "type", "veth", "peer", "name", links[1])
        for namespace, link, address in zip(names, links, ADDRESSES, strict=True):
            _ip("link", "set", link, "netns", namespace)
            _ip("-n", namespace, "addr", "add", f"{address}/24", "dev", link)
            _ip("-n", namespace, "link", "set", link, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")
        yield [
            Host(namespace, Network.host(BROADCAST, SEARCH_PORT, CA_PORT)) for namespace in names
        ]
    finally:
        for namespace in names:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, timeout=10)


def test_a_client_on_host_a_records_host_a_from_both_factories(
    two_hosts: list[Host], tmp_path: Path
) -> None:
    a, b = two_hosts
    with (
        SimIoc("HA:SIM:", a.env(), launcher=a.launcher) as ioc,
        FactoryProcess("HA:FAC:", data_dir=tmp_path / "a", env=a.env(), launcher=a.launcher),
        FactoryProcess("HB:FAC:", data_dir=tmp_path / "b", env=b.env(), launcher=b.launcher),
    ):
        client = subprocess.run(
            [
                *a.launcher,
                sys.executable,
                str(Path(__file__).with_name("netns_client.py")),
                ioc.prefix + "Counter",
                "HA:FAC:",
                "HB:FAC:",
            ],
            env={**a.env(), "PYTHONPATH": os.pathsep.join(sys.path)},
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert client.returncode == 0, client.stderr
        histories = json.loads(client.stdout)
    local, remote = histories["HA:FAC:remote:"], histories["HB:FAC:remote:"]
    assert len(local) >= 5 and len(remote) >= 5
    for history in (local, remote):
        assert history == sorted(history) and len(set(history)) == len(history)
    assert set(local) & set(remote), "both collectors record the same source"
