"""The uploader interface and its registry (entry-point group ``epics_collector.uploaders``).

An uploader copies one exported file to a data-management system and returns where it
went. Settings come from the collector's config (validated by the uploader's model);
credentials come from the environment or a file named in the settings, never from a PV.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from epics_collector.core import UnknownPluginError, load_plugin, plugin_names

GROUP = "epics_collector.uploaders"


class UploaderSettings(BaseModel):
    """Settings every uploader has; subclasses add their own."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(description="registered uploader name")
    retries: int = Field(default=3, ge=0, le=20, description="attempts after the first")
    backoff: float = Field(default=1.0, gt=0, le=60, description="first wait, doubled each retry")


class Uploader(ABC):
    """Copies a file somewhere; :meth:`upload` blocks (it runs in an executor)."""

    settings_model: ClassVar[type[UploaderSettings]] = UploaderSettings

    def __init__(self, settings: UploaderSettings) -> None:
        self.settings = settings

    @abstractmethod
    def upload(self, path: Path, metadata: dict[str, Any]) -> str:
        """Upload ``path``; return the remote location (raise with a clear text on failure)."""


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_credentials(path: Path | None) -> dict[str, str]:
    """Key/value credentials from a JSON file (empty without a file)."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read credentials file {path}: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"credentials file {path} must hold a JSON object")
    return {str(k): str(v) for k, v in data.items()}


class UnknownUploaderError(UnknownPluginError):
    """No uploader is registered under that name."""


def uploader_names() -> list[str]:
    """Registered uploader names, sorted."""
    return plugin_names(GROUP)


def load_uploader(kind: str) -> type[Uploader]:
    """The uploader class registered as ``kind``."""
    try:
        return load_plugin(GROUP, kind, Uploader, "uploader")
    except UnknownPluginError as error:
        raise UnknownUploaderError(str(error)) from None


def make_uploader(settings: dict[str, Any]) -> Uploader:
    """Validate ``settings`` against the named uploader's model and build it."""
    kind = settings.get("kind")
    if not isinstance(kind, str):
        raise ValueError(f"upload needs a kind: one of {', '.join(uploader_names())}")
    cls = load_uploader(kind)
    return cls(cls.settings_model.model_validate(settings))
