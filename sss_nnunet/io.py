"""Atomic file output: write to a temporary path next to the target, then rename.

An interrupted run therefore never leaves a half-written file or folder behind,
and an existing target is only replaced once the new one is complete.

Output folders of a command (a converted dataset, an evaluation) carry a manifest,
:data:`OWNER_FILE`, naming the command and the entries it wrote. ``--overwrite`` replaces
a folder only when the manifest says the same command wrote everything in it (or, for
folders written before manifests existed, when the command's ``legacy`` test accepts it),
and never a folder that holds one of the command's inputs.

Temporary names carry the writer's process id (``.NAME.PID.XXXX.partial``): the next run
of a command removes those of processes that no longer exist (a killed run) and says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sss_nnunet.errors import SSSError

OWNER_FILE = ".sss-nnunet-output.json"
TEMP_SUFFIXES = (".partial", ".old", ".staged")  # hidden temporary folders / files left by a killed run


class OutputExistsError(SSSError, FileExistsError):
    """The output exists and --overwrite was not given."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _default_mode(path: str | os.PathLike, directory: bool) -> None:
    """mkstemp/mkdtemp create 0600/0700; give the result the mode a plain open()/mkdir() would."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def os_error(e: OSError, what: str = "") -> SSSError:
    """One-line :class:`SSSError` for an ``OSError`` on a user's path (permissions, a file for a folder)."""
    name = e.filename if e.filename is not None else what
    reason = e.strerror or str(e)
    return SSSError(f"{name}: {reason}" + (f" ({what})" if what and name != what else ""))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder."""
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, *, sort_keys: bool = False) -> Path:
    """JSON with indent 4 (nnU-Net style). ``sort_keys=False`` keeps region label order."""
    return atomic_write_text(path, json.dumps(obj, indent=4, sort_keys=sort_keys) + "\n")


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write a file to; it is renamed to ``path`` on success.

    For writers that need a file name (e.g. ``savefig``, SimpleITK). The temporary
    name keeps the target's suffix so format detection still works.
    """
    path = Path(path)
    suffix = "".join(path.suffixes) or ".tmp"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=suffix, dir=path.parent)
    except OSError as e:
        raise os_error(e, f"cannot write {path}") from None
    os.close(fd)
    try:
        yield Path(tmp)
        _default_mode(tmp, directory=False)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _stale(entry: str, name: str, suffixes: tuple[str, ...] = TEMP_SUFFIXES) -> bool:
    """Whether ``entry`` is a temporary of ``name`` (``.NAME.PID.X….partial``) whose process is gone."""
    rest = entry.lstrip(".")
    if not entry.startswith(".") or not rest.startswith(f"{name}.") or not rest.endswith(suffixes):
        return False
    token = rest[len(name) + 1:].split(".", 1)[0]
    if token.isdigit():
        return not _pid_alive(int(token))
    # written before temporary names carried a process id: a hidden .partial/.old folder of a killed run
    parts = 3 + name.count(".")  # NAME.XXXXXXXX.partial
    return entry.startswith(f".{name}.") and len(rest.split(".")) == parts


def remove_stale(folder: Path, name: str, *, quiet: bool = False,
                 suffixes: tuple[str, ...] = TEMP_SUFFIXES) -> list[Path]:
    """Remove the temporaries of ``folder/name`` (ending in ``suffixes``) left by killed runs; print one line
    for each."""
    try:
        entries = [e for e in os.listdir(folder) if _stale(e, name, suffixes)]
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as e:
        raise os_error(e, f"cannot list {folder}") from None
    removed = []
    for entry in sorted(entries):
        path = Path(folder) / entry
        try:
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            else:
                path.unlink()
        except FileNotFoundError:
            continue
        except OSError as e:
            raise os_error(e, f"cannot remove {path}, left by an interrupted run") from None
        removed.append(path)
        if not quiet:
            print(f"removed {path}: left by an interrupted earlier run", file=sys.stderr)
    return removed


def _resolved(path: Path) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))


def check_output_dir(path: str | os.PathLike, *, overwrite: bool, owner: str | None = None,
                     legacy: Callable[[Path], bool] | None = None,
                     inputs: Sequence[str | os.PathLike | None] = ()) -> Path:
    """Refuse an output folder that cannot be (re)placed safely; clean temporaries of killed runs.

    ``path`` may not be a file, may not be or contain one of ``inputs`` (or lie inside a file input),
    must not exist unless ``overwrite``, and with ``overwrite`` must have been written by ``owner``
    (:data:`OWNER_FILE`, everything in it listed there) or pass ``legacy(path)``.
    Raises :class:`SSSError`; returns ``path``.
    """
    path = Path(path)
    real = _resolved(path)
    for given in inputs:
        if given is None:
            continue
        source = _resolved(Path(given))
        if source == real or real in source.parents:
            raise SSSError(f"{path}: holds the input {given}; refusing to write the output there "
                           f"(choose another output folder)")
    remove_stale(path.parent, path.name)
    if path.exists() and not path.is_dir():
        raise SSSError(f"{path}: exists and is not a folder (the output is a folder)")
    if not path.exists():
        return path
    if not overwrite:
        raise OutputExistsError(f"{path} already exists (use --overwrite to replace it)")
    if owner is None:
        return path
    try:
        entries = sorted(os.listdir(path))
    except OSError as e:
        raise os_error(e, f"cannot list {path}") from None
    manifest = _read_manifest(path)
    if manifest is not None and manifest.get("written_by") == owner:
        foreign = [e for e in entries if e != OWNER_FILE and e not in manifest.get("entries", [])]
        if not foreign:
            return path
        raise SSSError(f"{path}: --overwrite would delete {', '.join(foreign[:5])}"
                       f"{' ...' if len(foreign) > 5 else ''}, which {owner} did not write; move them away first")
    if manifest is None and (not entries or (legacy is not None and legacy(path))):
        return path
    raise SSSError(f"{path}: not an output of {owner} (no {OWNER_FILE} of it; holds "
                   f"{', '.join(entries[:5])}{' ...' if len(entries) > 5 else ''}): --overwrite only replaces "
                   f"what {owner} wrote. Choose another folder or remove it yourself")


def _read_manifest(path: Path) -> dict | None:
    try:
        data = json.loads((path / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike, *, overwrite: bool = False, owner: str | None = None,
                     legacy: Callable[[Path], bool] | None = None,
                     inputs: Sequence[str | os.PathLike | None] = ()) -> Iterator[Path]:
    """Build a directory under a temporary name and rename it to ``path`` when complete.

    Refuses (``FileExistsError``) when ``path`` exists and ``overwrite`` is false, and what
    :func:`check_output_dir` refuses (``SSSError``). With ``owner`` the new folder gets the
    manifest :data:`OWNER_FILE`. With ``overwrite`` the old directory is removed only after the
    new one is complete. On any error the temporary directory is removed and ``path`` is untouched.
    """
    path = Path(path)
    check_output_dir(path, overwrite=overwrite, owner=owner, legacy=legacy, inputs=inputs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".partial", dir=path.parent))
    except OSError as e:
        raise os_error(e, f"cannot create {path}") from None
    try:
        yield tmp
        if owner is not None:
            atomic_write_json(tmp / OWNER_FILE, {"written_by": owner, "entries": sorted(os.listdir(tmp))})
        _default_mode(tmp, directory=True)
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".old", dir=path.parent))
            try:
                os.replace(path, old)
            except BaseException:
                old.rmdir()  # nothing moved: leave no empty .old folder behind
                raise
            try:
                os.replace(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the previous copy back: the target is never left missing
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def nnunet_folder(variable: str) -> Path:
    """The folder named by the nnU-Net environment ``variable`` (e.g. ``nnUNet_raw``), for writing.

    A folder that does not exist is created, with a one-line notice, when its parent exists (a first
    run); a missing parent is an error (most likely a typo in the variable), and so is a file.
    """
    value = os.environ.get(variable)
    if not value:
        raise SSSError(
            f"environment variable {variable} is not set; nnU-Net keeps its data in the folders "
            f"named by nnUNet_raw, nnUNet_preprocessed and nnUNet_results "
            f"(e.g. export {variable}=/data/{variable}; see nnU-Net's documentation/setting_up_paths.md)"
        )
    path = Path(value).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise SSSError(f"{variable}={value} is a file, not a folder")
    if not path.parent.is_dir():
        raise SSSError(f"{variable}={value} does not exist and neither does {path.parent} (a typo?); "
                       f"create the folder or fix the variable")
    try:
        path.mkdir()
    except FileExistsError:
        return path
    except OSError as e:
        raise os_error(e, f"cannot create the {variable} folder") from None
    print(f"note: created {variable}={path} (the folder did not exist)", file=sys.stderr)
    return path
