"""Uploads of exported files to data-management systems."""

from epics_collector.upload._base import (
    UnknownUploaderError,
    Uploader,
    UploaderSettings,
    load_uploader,
    make_uploader,
    sha256,
    uploader_names,
)

__all__ = [
    "UnknownUploaderError",
    "Uploader",
    "UploaderSettings",
    "load_uploader",
    "make_uploader",
    "sha256",
    "uploader_names",
]
