"""The one write policy: a failed write is one line naming the path and what was kept, and leaves no temporary."""

from __future__ import annotations

import errno
import os

import pytest

from workbench import files
from workbench.errors import WorkbenchError, WriteFailed


def fail_with(code):
    def write(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    return write


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "disk is full"), (errno.EDQUOT, "quota"), (errno.EFBIG, "file-size limit"),
    (errno.EROFS, "read-only"), (errno.EACCES, "permission denied"),
])
def test_each_disk_error_is_one_line_naming_the_path_and_leaves_no_temporary(tmp_path, monkeypatch, code, words):
    target = tmp_path / "status.json"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", fail_with(code))
    with pytest.raises(WriteFailed) as caught:
        files.atomic_write_text(target, "new")
    message = str(caught.value)
    assert "\n" not in message and str(target) in message and words in message
    assert "kept: the previous status.json" in message
    assert caught.value.exit_code == 1 and isinstance(caught.value, WorkbenchError)
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"] and target.read_text() == "old"


def test_a_new_file_on_a_full_disk_leaves_nothing_behind(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "replace", fail_with(errno.ENOSPC))
    with pytest.raises(WriteFailed, match="kept: nothing"):
        files.atomic_write_bytes(tmp_path / "status.json", b"{}")
    assert list(tmp_path.iterdir()) == []


def test_torchs_short_write_reads_as_a_full_disk(tmp_path):
    with pytest.raises(WriteFailed, match="no space left"):
        with files.writing(tmp_path / "step_0000006.pt"):
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")


def test_other_errors_are_not_disguised_as_write_failures(tmp_path):
    with pytest.raises(ValueError):
        with files.writing(tmp_path / "x", cleanup=tmp_path / "x.tmp"):
            raise ValueError("a bug stays a bug")
