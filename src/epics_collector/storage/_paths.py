"""File names that arrive over PVA, confined to a data directory."""

from __future__ import annotations

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
    if "\x00" in name or "\\" in name:
        raise PathError(f"bad file name {name!r}: NUL or backslash")
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
