"""``epics-collector retrieval`` in a child process, and what its tests send it."""

from __future__ import annotations

import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, cast

from epics_collector.process import ManagedProcess
from epics_collector.pva import Network, listening_port


def free_port() -> int:
    """A TCP port for a service to listen on (below the ephemeral range)."""
    return listening_port(socket.SOCK_STREAM)


def iso(seconds: float) -> str:
    whole = int(seconds // 1)
    nanos = round((seconds - whole) * 1e9)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{nanos:09d}Z"


class Service:
    """``epics-collector retrieval`` in a child process on a free loopback port."""

    def __init__(self, network: Network, *args: str) -> None:
        self.port = free_port()
        self.process = ManagedProcess(
            "epics_collector",
            ["retrieval", *args, "--port", str(self.port)],
            env=network.environ(),
        )

    def __enter__(self) -> Service:
        self.process.start()
        assert self.process.wait_notified(30).startswith("retrieval on")
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()

    def get(self, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.port}/retrieval/{path}"
        request = urllib.request.Request(url, data=body, method="POST" if body else "GET")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def mgmt_reply(
        self, path: str, body: bytes | None = None, content_type: str = ""
    ) -> tuple[int, bytes]:
        """Status and body of ``/mgmt/bpl/PATH`` (POST with ``body``)."""
        url = f"http://127.0.0.1:{self.port}/mgmt/bpl/{path}"
        headers = {"Content-Type": content_type} if content_type else {}
        request = urllib.request.Request(url, data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.read()
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read()

    def mgmt(self, path: str, body: bytes | None = None, content_type: str = "") -> Any:
        """The JSON of ``/mgmt/bpl/PATH`` (POST with ``body``); AssertionError if not 200."""
        status, answer = self.mgmt_reply(path, body, content_type)
        assert status == 200, (path, status, answer)
        return json.loads(answer)

    def data(self, pv: str, start: float, end: float, kind: str = "raw") -> tuple[int, bytes]:
        query = urllib.parse.urlencode({"pv": pv, "from": iso(start), "to": iso(end)})
        return self.get(f"data/getData.{kind}?{query}")

    def names(self) -> list[str]:
        return cast(list[str], json.loads(self.get("bpl/getAllPVs")[1]))


def push(fac: Any, prefix: str, channel: str, value: str, stamp: str) -> None:
    """A sample pushed into a collector's extra channel (``fac``: a FactoryHandle)."""
    from p4p.nt import NTURI

    arguments = {"channel": channel, "value": value, "time": stamp}
    uri = NTURI([(key, "s") for key in arguments])
    fac.raw_rpc(prefix + "Push", uri.wrap(prefix + "Push", kws=arguments), timeout=30)
