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


def _dead_pid() -> int:
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporaries_of_dead_processes_are_removed_others_kept(tmp_path, capsys):
    from sss_nnunet.io import remove_stale

    dead = _dead_pid()
    stale = [tmp_path / f".out.{dead}.abc.partial", tmp_path / f".out.{dead}.def.old",
             tmp_path / ".out.k2j4h5g6.partial"]  # the last: named before temporaries carried a process id
    live = [tmp_path / f".out.{os.getpid()}.xyz.partial", tmp_path / ".outer.123.partial", tmp_path / "out",
            tmp_path / f".other.{dead}.abc.partial", tmp_path / f".out.{dead}.notes"]
    for p in stale + live:
        p.mkdir()
        (p / "file").write_text("x")
    (tmp_path / f"..out.{dead}.staged.{dead}.q.staged").write_text("x")  # an atomic_output temporary file
    removed = remove_stale(tmp_path, "out")
    assert sorted(removed) == sorted(stale + [tmp_path / f"..out.{dead}.staged.{dead}.q.staged"])
    assert all(p.exists() for p in live)
    assert capsys.readouterr().err.count("left by an interrupted earlier run") == 4


def test_overwrite_rules(tmp_path):
    from sss_nnunet.errors import SSSError
    from sss_nnunet.io import OWNER_FILE, check_output_dir

    inputs = tmp_path / "data" / "gt"
    inputs.mkdir(parents=True)
    for out in (inputs, tmp_path / "data", tmp_path):
        with pytest.raises(SSSError, match="holds the input"):
            check_output_dir(out, overwrite=True, owner="me", inputs=(inputs,))
    (tmp_path / "file").write_text("x")
    with pytest.raises(SSSError, match="not a folder"):
        check_output_dir(tmp_path / "file", overwrite=True, owner="me")
    with atomic_directory(tmp_path / "mine", owner="me") as tmp:
        (tmp / "result.txt").write_text("1")
    assert (tmp_path / "mine" / OWNER_FILE).is_file()
    check_output_dir(tmp_path / "mine", overwrite=True, owner="me")
    with pytest.raises(SSSError, match="not an output of you"):
        check_output_dir(tmp_path / "mine", overwrite=True, owner="you")
    (tmp_path / "mine" / "added.txt").write_text("user")
    with pytest.raises(SSSError, match="added.txt"):
        check_output_dir(tmp_path / "mine", overwrite=True, owner="me")
    with pytest.raises(SSSError, match="not an output of me"):
        check_output_dir(tmp_path / "data", overwrite=True, owner="me")
    check_output_dir(tmp_path / "data", overwrite=True, owner="me", legacy=lambda p: True)
