"""Where a comparison's runs come from: which data (a digest of the raw dataset's files) and which code.

The data digest is part of a comparison's settings, so finished runs restored into an output folder
(``benchmarks/evidence.sh`` keeps each piece's compare.json, which holds every run record, in
``docs/evidence/<piece>/``) are reused only against the very same cases, regenerated or not. It
covers ``dataset.json`` and every file of ``imagesTr``, ``labelsTr``, ``imagesTs`` and ``labelsTs``:

- a gzip file (``.nii.gz``) by its trailer, the CRC-32 and length of the *uncompressed* bytes: the
  gzip header holds a time stamp, so a regenerated, identical volume has other compressed bytes; the
  trailer is 8 bytes at the end of the file, so a CT-sized dataset costs no decompression;
- any other file (``.png``, ``.nrrd``, ``.json``) by the SHA-256 of its bytes.

``splits_final.json`` is not covered: nnU-Net derives it deterministically from the case list when it
is missing, and our converters write the paper's split.

:func:`restore_runs` brings an earlier comparison's finished runs back from its ``compare.json``
(which holds every run record), so that a comparison interrupted on one machine goes on on another
where only the committed reports survive (``sss-nnunet compare --restore``).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

from sss_nnunet.errors import SSSError
from sss_nnunet.io import atomic_write_json

DATA_FOLDERS = ("imagesTr", "labelsTr", "imagesTs", "labelsTs")


def file_digest(path: Path) -> str:
    """The content digest of one file (see the module docstring); a gzip file without a valid
    header or trailer is digested by its bytes."""
    with open(path, "rb") as f:
        head = f.read(2)
        if path.name.endswith(".gz") and head == b"\x1f\x8b" and f.seek(0, 2) >= 18:
            f.seek(-8, 2)
            return "gz:" + f.read(8).hex()
        f.seek(0)
        return "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()


def data_digest(raw: Path) -> str:
    """16 hex digits over ``raw/dataset.json`` and the files of :data:`DATA_FOLDERS` (names and
    contents, hidden files skipped), for a raw nnU-Net dataset folder ``raw``."""
    h = hashlib.sha256()
    files = [raw / "dataset.json"] + sorted(p for folder in DATA_FOLDERS if (raw / folder).is_dir()
                                            for p in (raw / folder).rglob("*")
                                            if p.is_file() and not p.name.startswith("."))
    for path in files:
        if path.is_file():
            h.update(f"{path.relative_to(raw).as_posix()}\0{file_digest(path)}\n".encode())
    return h.hexdigest()[:16]


def code_version() -> str:
    """The package version, plus the git commit of its checkout when it runs from one
    (``+dirty`` with uncommitted changes); the version alone elsewhere."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        text = version("sss-nnunet")
    except PackageNotFoundError:
        text = "unknown"
    root = Path(__file__).resolve().parents[2]
    try:
        top = subprocess.run(["git", "-C", str(root), "rev-parse", "--show-toplevel", "--short=12", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return text
    lines = top.stdout.split()
    if top.returncode != 0 or len(lines) != 2 or Path(lines[0]).resolve() != root:
        return text  # installed into site-packages (perhaps of a venv inside some other repository)
    return f"{text}+g{lines[1]}" + ("+dirty" if dirty.stdout.strip() else "")


def settings_diff(old: dict, new: dict) -> tuple[list[str], bool]:
    """The keys in which an earlier comparison's settings ``old`` differ from ``new``, as "key old -> new"
    (a key that only one side has counts, shown as None on the other). Settings written before the data
    digest existed are compared without it. Returns (differences, whether ``old`` predates the digest)."""
    old = dict(old)
    predates_digest = "data" not in old and "data" in new
    if predates_digest:
        old["data"] = new["data"]
    keys = list(new) + [k for k in old if k not in new]
    return [f"{k} {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)], predates_digest


def restore_runs(archive: Path, out: Path, settings: dict) -> tuple[int, str]:
    """Write the finished runs recorded in an earlier comparison's ``compare.json`` (``archive``) back
    as ``out/runs/seedS/ROW/result.json`` wherever ``out`` has none, so that compare skips them.
    The archive must pass :func:`read_archive`. Returns (runs restored, note)."""
    data, note = read_archive(archive, settings)
    restored = 0
    for row in data["rows"]:
        for run in row.get("runs", []) if isinstance(row, dict) else []:
            if not isinstance(run, dict) or run.get("status") != "ok" or not isinstance(run.get("seed"), int):
                continue
            name = Path(str(run.get("run_dir", ""))).name
            if not name or name.startswith("."):
                continue
            dest = Path(out) / "runs" / f"seed{run['seed']}" / name / "result.json"
            if not dest.exists():
                atomic_write_json(dest, run)
                restored += 1
    return restored, note


def read_archive(archive: Path, settings: dict) -> tuple[dict, str]:
    """An earlier comparison's ``compare.json`` whose settings equal ``settings`` (dataset, data
    digest, configuration, fold, plans, budget, device, ...), and a note: an archive written before
    data digests existed is accepted on the other settings, and the note says so. ``SSSError``
    naming the file otherwise."""
    try:
        data = json.loads(Path(archive).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SSSError(f"--restore {archive}: cannot read it as JSON ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("settings"), dict) \
            or not isinstance(data.get("rows"), list):
        raise SSSError(f"--restore {archive}: not a compare.json of sss-nnunet compare (no settings and rows)")
    diff, predates_digest = settings_diff(data["settings"], settings)
    note = "; the archive predates data digests, so its cases were not checked" if predates_digest else ""
    if diff:
        raise SSSError(f"--restore {archive}: its runs used other settings ({', '.join(diff)})")
    return data, note


def foreign_run(record: dict, identity: dict, budget: dict) -> str:
    """Why a finished run record found in a comparison's folder is not that comparison's run: ``""``
    when its seed, trainer, plans, recipe (``identity``, the keys present in the record) and budget
    (``record["stats"]["budget"]`` against the comparison's ``budget``) all match, else the first
    mismatch, e.g. ``"budget iterations 1000, this comparison 500"``."""
    for key, want in identity.items():
        if key in record and record[key] != want:
            return f"{key} {record[key]!r}, this comparison {want!r}"
    stats = record.get("stats")
    found = stats.get("budget") if isinstance(stats, dict) else None
    if isinstance(found, dict):
        for key, want in budget.items():
            if key in found and found[key] != want:
                return f"budget {key} {found[key]!r}, this comparison {want!r}"
    return ""


def read_json_object(path: Path) -> dict:
    """A JSON file that must hold an object; ``SSSError`` naming the file otherwise."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SSSError(f"{path}: cannot read it as JSON ({e})") from None
    if not isinstance(data, dict):
        raise SSSError(f"{path}: holds a JSON {type(data).__name__}, not an object")
    return data


def network_name(trainer: str, plans: str | None) -> str:
    """``TRAINER``, or ``TRAINER:PLANS`` for plans other than nnU-Net's default (``nnUNetPlans``)."""
    return trainer if plans in (None, "", "nnUNetPlans") else f"{trainer}:{plans}"


def finished_runs(source: Path) -> list[tuple[tuple, dict]]:
    """Every finished (status ``ok``) run record of a comparison, once, with its identity
    ``(dataset, iterations, trainer, plans, recipe, seed)``.

    ``source``: a ``compare --out`` folder (``runs/seedS/ROW/result.json``, identity from its
    ``compare_settings.json``) and / or an archive folder (``compare.json`` and a ladder's
    ``rungs/*.json``), or one such JSON file. A run found in several places counts once, the first."""
    source = Path(source)
    found: list[tuple[dict, dict, Path]] = []  # (settings, record, its file)
    if source.is_dir():
        settings_file = source / "compare_settings.json"
        settings = read_json_object(settings_file) if settings_file.is_file() else {}
        found += [(settings, read_json_object(p), p) for p in sorted(source.glob("runs/seed*/*/result.json"))]
        reports = [p for p in [source / "compare.json", *sorted(source.glob("rungs/*.json"))] if p.is_file()]
    else:
        reports = [source]
    for report in reports:
        data = read_json_object(report)
        rows = data.get("rows")
        if not isinstance(data.get("settings", {}), dict) or not isinstance(rows, list) \
                or not all(isinstance(row, dict) and isinstance(row.get("runs", []), list) for row in rows):
            raise SSSError(f"{report}: not a compare.json of sss-nnunet compare (settings, rows with runs)")
        found += [(data.get("settings", {}), run, report) for row in rows for run in row.get("runs", [])]
    runs, seen = [], set()
    for settings, record, path in found:
        if not isinstance(record, dict):
            raise SSSError(f"{path}: a run record that is not a JSON object")
        if record.get("status") == "ok" and not isinstance(record.get("summary"), dict):
            raise SSSError(f"{path}: a finished run (seed {record.get('seed')}, {record.get('trainer')}) "
                           f"without its evaluation summary")
        key = (settings.get("dataset"), (settings.get("budget") or {}).get("iterations"), record.get("trainer"),
               record.get("plans"), record.get("recipe"), record.get("seed"))
        if record.get("status") == "ok" and key not in seen:
            seen.add(key)
            runs.append((key, record))
    return runs
