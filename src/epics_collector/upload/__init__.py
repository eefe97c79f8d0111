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
from epics_collector.upload._retry import UploadFailedError, upload_with_retries

__all__ = [
    "UnknownUploaderError",
    "UploadFailedError",
    "Uploader",
    "UploaderSettings",
    "load_uploader",
    "make_uploader",
    "sha256",
    "upload_with_retries",
    "uploader_names",
]
