"""``directory``: copy to a mounted share, verified by SHA-256."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from pydantic import Field

from epics_collector.upload._base import Uploader, UploaderSettings, sha256


class DirectorySettings(UploaderSettings):
    """Where to copy."""

    target: Path = Field(description="folder on a mounted share (set by the operator)")


class DirectoryUploader(Uploader):
    """Copies the file (under a temporary name, then renamed) and checks its SHA-256."""

    settings_model = DirectorySettings

    def upload(self, path: Path, metadata: dict[str, Any]) -> str:
        """Copy ``path`` into the target folder; refuse to replace a different file."""
        assert isinstance(self.settings, DirectorySettings)
        target = self.settings.target
        if not target.is_dir():
            raise OSError(f"target folder {target} does not exist")
        destination = target / path.name
        expected = sha256(path)
        if destination.exists():
            if sha256(destination) == expected:
                return str(destination)
            raise FileExistsError(f"{destination} exists with other content")
        partial = destination.with_name(destination.name + ".partial")
        shutil.copyfile(path, partial)
        if sha256(partial) != expected:
            partial.unlink()
            raise OSError(f"checksum mismatch copying to {destination}")
        os.replace(partial, destination)
        return str(destination)
