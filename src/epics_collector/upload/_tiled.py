"""``tiled``: write a NeXus export's arrays into a Tiled server (extra ``[tiled]``).

One container per export (named after the file) with one container per channel holding
``time`` (POSIX seconds), ``value``, ``severity`` and ``status`` arrays; the channel's PV,
kind and units are the channel container's metadata. String channels are written as
metadata only (Tiled arrays are numeric).
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from pydantic import Field

from epics_collector.upload._base import Uploader, UploaderSettings, read_credentials, sha256


class TiledSettings(UploaderSettings):
    """Server address; the API key from ``TILED_API_KEY`` or ``credentials_file``."""

    uri: str = Field(description="http://host:port of the Tiled server")
    container: str | None = Field(default=None, description="existing container to write into")
    credentials_file: Path | None = Field(default=None, description="JSON with api_key")


class TiledUploader(Uploader):
    """Reads the NeXus file written by Export and writes its channels as Tiled arrays."""

    settings_model = TiledSettings

    def upload(self, path: Path, metadata: dict[str, Any]) -> str:
        """Write the export; return the node's URI."""
        try:
            from tiled.client import from_uri
        except ImportError:  # pragma: no cover - depends on the installation
            raise RuntimeError(
                "the tiled uploader needs tiled: pip install 'epics-collector[tiled]'"
            ) from None
        assert isinstance(self.settings, TiledSettings)
        if path.suffix != ".nxs":
            raise ValueError(f"the tiled uploader takes NeXus exports, not {path.name}")
        api_key = read_credentials(self.settings.credentials_file).get("api_key")
        root: Any = from_uri(self.settings.uri, api_key=api_key or os.environ.get("TILED_API_KEY"))
        try:
            self._write(root, path, metadata)
        finally:
            root.context.close()
        return f"{self.settings.uri.rstrip('/')}/api/v1/metadata/{path.stem}"

    def _write(self, root: Any, path: Path, metadata: dict[str, Any]) -> None:
        assert isinstance(self.settings, TiledSettings)
        client = root[self.settings.container] if self.settings.container else root
        key = path.stem
        run = client.create_container(key=key, metadata={**metadata, "sha256": sha256(path)})
        with h5py.File(path) as f:
            channels: Any = f["entry/channels"]
            for alias, log in channels.items():
                start = datetime.fromisoformat(log["time"].attrs["start"]).timestamp()
                info = {
                    "source": str(log.attrs.get("source", "")),
                    "kind": str(log.attrs.get("kind", "")),
                    "units": str(log["value"].attrs.get("units", "")),
                }
                node = run.create_container(key=alias, metadata=info)
                node.write_array(np.asarray(log["time"][()]) + start, key="time")
                value = log["value"]
                if value.dtype.kind in "biuf":
                    node.write_array(np.asarray(value[()]), key="value")
                node.write_array(np.asarray(log["severity"][()]), key="severity")
                node.write_array(np.asarray(log["status"][()]), key="status")
