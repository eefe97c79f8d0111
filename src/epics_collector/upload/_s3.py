"""``s3``: any S3-compatible store (AWS, MinIO, Ceph) through boto3 (extra ``[s3]``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field

from epics_collector.upload._base import Uploader, UploaderSettings, read_credentials, sha256


class S3Settings(UploaderSettings):
    """Bucket and endpoint; credentials from the environment or ``credentials_file``."""

    bucket: str = Field(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", description="bucket")
    key_prefix: str = Field(default="", description="prepended to the file name")
    endpoint_url: str | None = Field(default=None, description="for MinIO, Ceph, ...")
    region: str | None = Field(default=None)
    credentials_file: Path | None = Field(
        default=None,
        description="JSON with aws_access_key_id, aws_secret_access_key (else the environment)",
    )


class S3Uploader(Uploader):
    """``upload_file`` with the file's SHA-256 and the collector's metadata on the object."""

    settings_model = S3Settings

    def upload(self, path: Path, metadata: dict[str, Any]) -> str:
        """Put ``path`` as ``key_prefix + name``; return ``s3://bucket/key``."""
        try:
            import boto3
            from botocore.config import Config
        except ImportError:  # pragma: no cover - depends on the installation
            raise RuntimeError(
                "the s3 uploader needs boto3: pip install 'epics-collector[s3]'"
            ) from None
        assert isinstance(self.settings, S3Settings)
        s = self.settings
        credentials = read_credentials(s.credentials_file)
        client = boto3.client(
            "s3",
            endpoint_url=s.endpoint_url,
            region_name=s.region or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
            aws_access_key_id=credentials.get("aws_access_key_id"),
            aws_secret_access_key=credentials.get("aws_secret_access_key"),
            config=Config(connect_timeout=5, read_timeout=30, retries={"max_attempts": 1}),
        )
        key = s.key_prefix + path.name
        tags = {k: str(v)[:256] for k, v in metadata.items()} | {"sha256": sha256(path)}
        try:
            client.upload_file(str(path), s.bucket, key, ExtraArgs={"Metadata": tags})
        finally:
            client.close()
        return f"s3://{s.bucket}/{key}"
