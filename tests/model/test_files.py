"""Atomic writes: the target holds the old content or the new, never a part, and no temporary file stays."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.files import atomic_write, stale_temp_files


def test_bytes_and_writers_replace_the_file_and_create_its_folder(tmp_path):
    path = tmp_path / "a" / "b" / "f.bin"
    atomic_write(path, b"first")
    assert path.read_bytes() == b"first"
    atomic_write(path, lambda tmp: Path(tmp).write_text("second"))
    assert path.read_text() == "second"
    assert [p.name for p in path.parent.iterdir()] == ["f.bin"]


def test_a_failing_writer_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "f.json"
    path.write_text("old")

    def half_then_fail(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write('{"par')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_stale_temp_files_are_those_of_that_file_only(tmp_path):
    path = tmp_path / "streams.json"
    left = tmp_path / ".streams.json.k1ll3d.tmp"
    left.write_text("{")
    (tmp_path / ".other.json.x.tmp").write_text("{")
    assert list(stale_temp_files(path)) == [left]
    assert list(stale_temp_files(tmp_path / "missing" / "streams.json")) == []
