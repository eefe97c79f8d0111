"""Uploads to real data-management servers started on loopback by the tests."""

import json
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from p4p.client.thread import RemoteError

from epics_collector.collector import CollectorConfig
from epics_collector.core import ConfigError, validate_config
from epics_collector.process import ManagedProcess, wait_for, wait_until
from epics_collector.pva import listening_port

pytestmark = pytest.mark.system
SECRET = "s3cr3tNeverShown0123"  # alphanumeric: Tiled requires it


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except OSError as error:
        return getattr(error, "code", None) is not None  # an HTTP error is an answer


class Server:
    """A loopback HTTP server run as ``python -m MODULE ARGS``; restartable."""

    def __init__(self, module: str, args: list[str], url: str) -> None:
        self.module, self.args, self.url = module, args, url
        self.process: ManagedProcess | None = None

    def start(self) -> "Server":
        self.process = ManagedProcess(self.module, self.args).start()
        self.process.wait_ready(lambda: answers(self.url), timeout=60)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()


@pytest.fixture
def s3_server() -> Iterator[Server]:
    port = listening_port(1)
    server = Server("moto.server", ["-H", "127.0.0.1", "-p", str(port)], f"http://127.0.0.1:{port}")
    yield server.start()
    server.stop()


@pytest.fixture
def tiled_server() -> Iterator[Server]:
    port = listening_port(1)
    args = ["serve", "catalog", "--temp", "--init", "--api-key", SECRET]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    server = Server("tiled", args, f"http://127.0.0.1:{port}/api/v1/")
    yield server.start()
    server.stop()


@contextmanager
def s3_client(url: str, credentials: dict) -> Iterator[Any]:
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=credentials["aws_access_key_id"],
        aws_secret_access_key=credentials["aws_secret_access_key"],
    )
    try:
        yield client
    finally:
        client.close()


def record_and_export(ctx, prefix: str, name: str) -> Path:
    ctx.put(prefix + "Start", 1)
    wait_for(lambda: ctx.get(prefix + "Count") >= 5, 5, "rows recorded")
    ctx.put(prefix + "Stop", 1)
    ctx.put(prefix + "Export", name)
    return Path(ctx.get(prefix + "ExportPath") + "")


def wait_status(ctx, prefix: str, word: str, timeout: float = 30) -> str:
    # (str() of p4p's string type prepends the timestamp; compare the value itself)
    assert wait_until(lambda: ctx.get(prefix + "UploadStatus").startswith(word), timeout), ctx.get(
        prefix + "UploadStatus"
    )
    return ctx.get(prefix + "UploadStatus") + ""


def test_s3_upload_failure_and_retry(sim_ioc, collector, prefix, ctx, s3_server, tmp_path):
    credentials = {"aws_access_key_id": "test", "aws_secret_access_key": SECRET}
    secrets = tmp_path / "s3.json"
    secrets.write_text(json.dumps(credentials))
    with s3_client(s3_server.url, credentials) as s3:
        s3.create_bucket(Bucket="epics-runs")
    upload = {
        "kind": "s3",
        "bucket": "epics-runs",
        "endpoint_url": s3_server.url,
        "credentials_file": str(secrets),
        "key_prefix": "lab/",
        "retries": 1,
        "backoff": 0.2,
    }
    collector({"channels": [{"pv": sim_ioc.prefix + "Counter", "alias": "c"}], "upload": upload})
    with pytest.raises(RemoteError, match="nothing exported yet"):
        ctx.put(prefix + "Upload", 1)
    path = record_and_export(ctx, prefix, "run1")
    ctx.put(prefix + "Upload", 1)
    assert (
        wait_status(ctx, prefix, "uploaded") == "uploaded run1.nxs to s3://epics-runs/lab/run1.nxs"
    )
    with s3_client(s3_server.url, credentials) as s3:
        body = s3.get_object(Bucket="epics-runs", Key="lab/run1.nxs")["Body"]
        assert body.read() == path.read_bytes()
        body.close()
    assert json.loads(path.with_name("run1.nxs.upload.json").read_text())["location"].startswith(
        "s3://"
    )

    s3_server.stop()
    path2 = record_and_export(ctx, prefix, "run2")
    ctx.put(prefix + "Upload", 1)
    failed = wait_status(ctx, prefix, "upload of run2.nxs failed")
    assert "after 2 attempts" in failed and ctx.get(prefix + "UploadStatus").severity == 2
    assert ctx.get(prefix + "Message").severity == 2 and path2.exists()
    s3_server.start()
    with s3_client(s3_server.url, credentials) as s3:
        s3.create_bucket(Bucket="epics-runs")
    ctx.put(prefix + "Upload", 1)
    wait_status(ctx, prefix, "uploaded")
    for pv in ("Config", "Message", "UploadStatus"):
        assert SECRET not in ctx.get(prefix + pv)


def test_tiled_upload(sim_ioc, collector, prefix, ctx, tiled_server, tmp_path):
    from tiled.client import from_uri

    (tmp_path / "tiled.json").write_text(json.dumps({"api_key": SECRET}))
    uri = tiled_server.url.removesuffix("/api/v1/")
    upload = {"kind": "tiled", "uri": uri, "credentials_file": str(tmp_path / "tiled.json")}
    channels = [
        {"pv": sim_ioc.prefix + "Counter", "alias": "c"},
        {"pv": sim_ioc.prefix + "Waveform", "alias": "w", "kind": "waveform"},
    ]
    collector({"channels": channels, "upload": upload})
    record_and_export(ctx, prefix, "tiledrun")
    ctx.put(prefix + "Upload", 1)
    status = wait_status(ctx, prefix, "uploaded", timeout=60)
    assert status == f"uploaded tiledrun.nxs to {uri}/api/v1/metadata/tiledrun"
    root = from_uri(uri, api_key=SECRET)
    try:
        node = root["tiledrun"]
        assert np.array_equal(node["c"]["value"].read(), ctx.get(prefix + "c:Value"))
        assert np.allclose(node["c"]["time"].read(), ctx.get(prefix + "c:Time"))
        assert node["w"]["value"].read().shape[1] == 1000
        assert node["c"].metadata["source"] == sim_ioc.prefix + "Counter"
    finally:
        root.context.close()


def test_directory_upload_with_checksum(sim_ioc, collector, prefix, ctx, tmp_path):
    share = tmp_path / "share"
    share.mkdir()
    collector(
        {
            "channels": [sim_ioc.prefix + "Counter"],
            "upload": {"kind": "directory", "target": str(share)},
        }
    )
    path = record_and_export(ctx, prefix, "run")
    ctx.put(prefix + "Upload", 1)
    wait_status(ctx, prefix, "uploaded")
    assert (share / "run.nxs").read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    ("upload", "error"),
    [
        ({"kind": "ftp"}, "unknown uploader 'ftp'"),
        ({}, "upload needs a kind"),
        ({"kind": "s3", "bucket": "Bad_Bucket"}, "bucket"),
        ({"kind": "s3", "bucket": "ok-bucket", "aws_secret_access_key": "x"}, "Extra inputs"),
        ({"kind": "tiled"}, "uri"),
        ({"kind": "directory", "target": "/x", "retries": -1}, "retries"),
    ],
)
def test_bad_upload_configs(upload, error):
    with pytest.raises(ConfigError, match=error):
        validate_config(CollectorConfig, {"channels": ["A"], "upload": upload})
