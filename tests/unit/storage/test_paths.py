import os

import pytest

from epics_collector.storage import PathError, confined_path


def test_plain_and_nested_names(tmp_path):
    assert confined_path(tmp_path, "run1", suffix=".nxs") == (tmp_path / "run1.nxs").resolve()
    nested = confined_path(tmp_path, "a/b/run.nxs", suffix=".nxs")
    assert nested.parent.is_dir() and nested.name == "run.nxs"


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("/etc/passwd", "absolute"),
        ("../outside", "'..'"),
        ("a/../../outside", "'..'"),
        ("", "empty"),
        (" x", "spaces"),
        ("a\x00b", "NUL"),
        ("a\\..\\b", "backslash"),
    ],
)
def test_tricks_are_refused(tmp_path, name, error):
    with pytest.raises(PathError, match=error):
        confined_path(tmp_path / "data", name)


def test_symlinks_out_are_refused(tmp_path):
    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    os.symlink(outside, data / "link")
    os.symlink(outside / "file.nxs", data / "file.nxs")
    with pytest.raises(PathError, match="outside the data directory"):
        confined_path(data, "link/run.nxs")
    with pytest.raises(PathError, match="outside the data directory"):
        confined_path(data, "file.nxs")
    assert not list(outside.iterdir())


def test_existing_files_need_overwrite(tmp_path):
    (tmp_path / "run.csv").write_text("x")
    with pytest.raises(PathError, match="exists"):
        confined_path(tmp_path, "run.csv", suffix=".csv")
    assert confined_path(tmp_path, "run", suffix=".csv", overwrite=True).name == "run.csv"
