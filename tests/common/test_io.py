"""Atomic output helpers: complete-or-nothing writes with the permissions of a plain write."""

from __future__ import annotations

import os
import stat

import pytest

from sss_nnunet.io import atomic_directory, atomic_output, atomic_write_json, atomic_write_text


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_files_and_folders_get_umask_permissions(tmp_path, umask_022):
    atomic_write_text(tmp_path / "a.txt", "x")
    atomic_write_json(tmp_path / "b.json", {"k": 1})
    with atomic_output(tmp_path / "c.png") as tmp:
        assert tmp.suffix == ".png"
        tmp.write_bytes(b"png")
    with atomic_directory(tmp_path / "d") as tmp:
        (tmp / "inner.txt").write_text("y")
    assert [_mode(tmp_path / n) for n in ("a.txt", "b.json", "c.png")] == [0o644] * 3
    assert _mode(tmp_path / "d") == 0o755
    assert (tmp_path / "d" / "inner.txt").read_text() == "y"


def test_failed_writes_leave_nothing(tmp_path):
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "keep", overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "plot.png") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
    assert [p.name for p in (tmp_path / "keep").iterdir()] == ["old.txt"]


def test_existing_directory_is_refused_without_overwrite(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(FileExistsError, match="--overwrite"), atomic_directory(tmp_path / "d"):
        pass


def test_failed_swap_puts_the_old_directory_back(tmp_path, monkeypatch):
    """The second rename (new copy into place) fails: the old copy is back at the target, nothing hidden is left."""
    target = tmp_path / "keep"
    target.mkdir()
    (target / "old.txt").write_text("old")
    real_replace = os.replace

    def failing_replace(src, dst):
        if ".partial" in str(src):
            raise OSError("injected failure while renaming the new copy into place")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="injected"), atomic_directory(target, overwrite=True) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    assert (target / "old.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep"]
