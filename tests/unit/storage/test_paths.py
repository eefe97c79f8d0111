import os
from pathlib import Path

import pytest

from epics_collector.storage import ExportData, PathError, confined_path


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
        ("a\x00b", "control characters"),
        ("run\nfake", "control characters"),
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


def test_no_write_follows_a_symlink(tmp_path: Path) -> None:
    from epics_collector.storage import write_csv
    from epics_collector.storage._paths import new_file

    data, outside = tmp_path / "data", tmp_path / "outside"
    data.mkdir()
    outside.mkdir()
    # a link planted at the partial name: removed, never written through
    (data / "run.csv.partial").symlink_to(outside / "victim")
    with new_file(data / "run.csv", data) as handle, open(handle, "w") as file:
        file.write("ok")
    assert (data / "run.csv").read_text() == "ok" and not (outside / "victim").exists()
    # a folder swapped for a link to outside: refused, nothing written there
    (data / "sub").symlink_to(outside)
    with pytest.raises(PathError, match="not a folder inside"):
        write_csv(data / "sub" / "run.csv", ExportData("D:", "{}", [], [], []), data)
    assert not list(outside.iterdir())
    # a link at the target itself is replaced, not written through
    (outside / "keep").write_text("keep")
    (data / "link.csv").symlink_to(outside / "keep")
    with new_file(data / "link.csv", data) as handle, open(handle, "w") as file:
        file.write("new")
    assert (outside / "keep").read_text() == "keep" and not (data / "link.csv").is_symlink()


def test_annotations_are_never_appended_through_a_link(tmp_path: Path) -> None:
    from epics_collector.collector._annotating import Annotations

    outside = tmp_path / "outside.txt"
    outside.write_text("")
    (tmp_path / "annotations.jsonl").symlink_to(outside)
    with pytest.raises(OSError):
        Annotations(tmp_path / "annotations.jsonl").add("note")
    assert outside.read_text() == ""
