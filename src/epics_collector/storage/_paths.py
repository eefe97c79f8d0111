"""File names that arrive over PVA, confined to a data directory."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path, PurePosixPath


class PathError(ValueError):
    """A file name that is refused; the text says why."""


def confined_path(root: Path, name: str, *, suffix: str = "", overwrite: bool = False) -> Path:
    """``root/name`` (with ``suffix`` added if missing), refusing every way out of ``root``.

    Refused: empty names, absolute paths, ``..``, NUL bytes, paths whose real location
    (after following symlinks) is outside ``root``, and existing files unless ``overwrite``.
    Missing parent folders inside ``root`` are created.
    """
    if not name or name != name.strip():
        raise PathError(f"bad file name {name!r}: empty or surrounded by spaces")
    if "\\" in name or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise PathError(f"bad file name {name!r}: control characters or backslash")
    relative = PurePosixPath(name)
    if relative.is_absolute():
        raise PathError(f"{name!r} is absolute: give a name inside the data directory")
    if ".." in relative.parts:
        raise PathError(f"{name!r} contains '..': give a name inside the data directory")
    if suffix and not relative.name.endswith(suffix):
        relative = relative.with_name(relative.name + suffix)
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or target == base:
        raise PathError(f"{name!r} leads outside the data directory (a symlink?)")
    if target.exists() and not overwrite:
        raise PathError(f"{relative} exists in the data directory; choose another name")
    if target.exists() and not target.is_file():
        raise PathError(f"{relative} exists and is not a file")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def existing_inside(root: Path, name: str) -> Path:
    """An existing file ``root/name``, refusing every way out of ``root`` (for reading)."""
    if not name or "\x00" in name or "\\" in name:
        raise PathError(f"bad file name {name!r}")
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise PathError(f"{name!r} must be a name inside the data directory")
    base = root.resolve()
    target = (base / relative).resolve()
    if not target.is_relative_to(base):
        raise PathError(f"{name!r} leads outside the data directory (a symlink?)")
    if not target.is_file():
        raise PathError(f"{name!r} is not a file in the data directory {base}")
    return target


def _open_dir(base: Path, relative: PurePosixPath) -> int:
    """An fd of ``base/relative``, making missing folders on the way.

    No symlink below ``base`` is followed: a folder swapped for a link is refused.
    """
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for part in relative.parts:
            with contextlib.suppress(FileExistsError):
                os.mkdir(part, 0o755, dir_fd=fd)
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = inner
    except OSError as error:
        os.close(fd)
        raise PathError(f"{relative}: not a folder inside {base} ({error.strerror})") from None
    return fd


def open_inside(root: Path, relative: str, flags: int, mode: int = 0o600) -> int:
    """A file descriptor of ``root/relative``, following no symlink below ``root``.

    Missing folders are made on the way (as :func:`new_file` does); the file itself is
    opened with ``O_NOFOLLOW``, so a link in its place is refused (:class:`PathError`).
    """
    path = PurePosixPath(relative)
    folder = _open_dir(root.resolve(), path.parent)
    try:
        return os.open(path.name, flags | os.O_NOFOLLOW, mode, dir_fd=folder)
    except OSError as error:
        raise PathError(f"{relative}: cannot open inside {root} ({error.strerror})") from None
    finally:
        os.close(folder)


def names_inside(root: Path, relative: str) -> list[str]:
    """The names in folder ``root/relative`` (made if missing), following no symlink."""
    folder = _open_dir(root.resolve(), PurePosixPath(relative))
    try:
        return sorted(os.listdir(folder))
    finally:
        os.close(folder)


@contextlib.contextmanager
def new_file(
    target: Path, root: Path | None = None, *, sync: bool = False, mode: int = 0o644
) -> Iterator[str]:
    """Write ``target`` atomically through a new ``<name>.partial`` created here.

    Yields a path naming exactly that new file (``/proc/self/fd/N``) for writers that
    want a path (h5py). No symlink is followed: not at the partial name (created with
    ``O_EXCL | O_NOFOLLOW`` after removing a stale one), not in folders below ``root``
    (default: the target's folder), not at the target (the rename replaces a link, it
    does not write through it). On an error the partial file is removed. ``sync``:
    flush it to the disk before the rename (small files that must survive a power cut).
    ``mode``: the new file's permissions (0o600 for what only its owner may read).
    """
    if root is None:
        base, relative = target.parent.resolve(), PurePosixPath(target.name)
    else:
        base, absolute = root.resolve(), Path(os.path.abspath(target))
        for start in (base, root.absolute()):
            if absolute.is_relative_to(start):
                relative = PurePosixPath(absolute.relative_to(start))
                break
        else:
            raise PathError(f"{target} is not inside {root}")
    folder = _open_dir(base, relative.parent)
    partial = relative.name + ".partial"
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(partial, dir_fd=folder)  # a stale one, or a link: the link itself goes
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
        fd = os.open(partial, flags, mode, dir_fd=folder)
        try:
            yield f"/proc/self/fd/{fd}"
            if sync:
                os.fsync(fd)
            os.rename(partial, relative.name, src_dir_fd=folder, dst_dir_fd=folder)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(partial, dir_fd=folder)
            raise
        finally:
            os.close(fd)
    finally:
        os.close(folder)
