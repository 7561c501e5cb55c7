"""ACDC cardiac cine MRI (MICCAI 2017 Automated Cardiac Diagnosis Challenge).

Raw layout (``--raw`` = the folder holding ``training/``, e.g. ``ACDC/database``)::

    training/patient001/Info.cfg                     "ED: 1", "ES: 12", Group, Height, NbFrame, Weight
    training/patient001/patient001_frame01.nii.gz    one 3D frame
    training/patient001/patient001_frame01_gt.nii.gz 0 background, 1 RV, 2 Myo, 3 LV
    training/patient001/patient001_4d.nii.gz         not used
    testing/patient101/...                           same, ``_gt`` only in the later release

One case per labelled frame, the ED and ES frames named in Info.cfg; the case name is
the raw frame name ``patientXXX_frameYY`` (as in the paper split), so the files are
``imagesTr/patient001_frame01_0000.nii.gz`` and ``labelsTr/patient001_frame01.nii.gz``.
Labels are kept as they are (already 1 RV, 2 Myo, 3 LV).

Dataset803_ACDC, the nnFormer/UNETR++ protocol on the 100 ``training/`` patients:
- imagesTr: the 70 train + 10 val patients (160 volumes);
  imagesTs/labelsTs: the 20 test patients (40 volumes), nothing else;
- ``splits_final.json`` fold 0 = the paper's 70 train / 10 val patients (140 / 20
  volumes); folds 1-4 = folds 1-4 of a seeded 5-fold CV over the 80 patients, split
  by patient so the two frames of a patient are always on the same side.
- ``testing/`` patients 101-150 (the challenge's own test set, not part of the paper
  protocol) go to imagesTs_official/labelsTs_official when their ``_gt`` files are
  present, so labelsTs stays exactly the paper's 40 test volumes. A ``testing/``
  folder without any ``_gt`` file (first release) is skipped with a note.
"""

from __future__ import annotations

import re
from pathlib import Path

from sss_nnunet.datasets.common import Case, LabelMap, locate_root
from sss_nnunet.datasets.specs import ACDC, paper_splits
from sss_nnunet.datasets.splits import Split, paper_fold, paper_fold_then_cv
from sss_nnunet.datasets.writer import Conversion
from sss_nnunet.errors import SSSError

REQUIRED_FIELDS = ("ED", "ES")
OFFICIAL_TEST_SUBSET = "Ts_official"


def read_info_cfg(path: Path) -> dict[str, int]:
    """The ED and ES frame numbers (1-based) of an ACDC ``Info.cfg``."""
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        raise SSSError(f"{path}: cannot read ({e.strerror})") from None
    fields: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise SSSError(f"{path}: line {number} {line.strip()!r} is not 'Key: value'")
        fields[key.strip()] = value.strip()
    absent = [f for f in REQUIRED_FIELDS if f not in fields]
    if absent:
        raise SSSError(f"{path}: missing field(s) {', '.join(absent)} (found {', '.join(fields) or 'none'})")
    frames = {}
    for f in REQUIRED_FIELDS:
        try:
            frames[f] = int(fields[f])
        except ValueError:
            frames[f] = 0
        if frames[f] < 1:
            raise SSSError(f"{path}: field {f} is {fields[f]!r}, expected a frame number >= 1")
    return frames


def patient_of(identifier: str) -> str:
    """``patient001_frame01`` -> ``patient001``."""
    return identifier.split("_")[0]


def _patient_cases(folder: Path, subset: str) -> list[Case]:
    frames = read_info_cfg(folder / "Info.cfg")
    names = sorted({f"{folder.name}_frame{frames[f]:02d}" for f in REQUIRED_FIELDS})
    return [Case(n, (folder / f"{n}.nii.gz",), folder / f"{n}_gt.nii.gz", subset) for n in names]


def acdc(raw: Path) -> Conversion:
    """The ACDC dataset with the 70/10/20 patient split."""
    root = locate_root(raw, "training", ("database", "ACDC/database", "ACDC"), "ACDC")
    split = paper_splits()["acdc"]
    names = {part: set(split[part]) for part in ("nnformer_train_70pat", "nnformer_val_10pat",
                                                 "test_20pat_40vol")}
    test_patients = {patient_of(n) for n in names["test_20pat_40vol"]}
    cases, missing, notes = [], [], []
    for patient in sorted({patient_of(n) for part in names.values() for n in part}):
        folder = root / "training" / patient
        if not (folder / "Info.cfg").is_file():
            missing.append((patient, folder / "Info.cfg"))
            continue
        found = _patient_cases(folder, "Ts" if patient in test_patients else "Tr")
        expected = sorted(n for part in names.values() for n in part if patient_of(n) == patient)
        if [c.identifier for c in found] != expected:
            raise SSSError(f"{folder / 'Info.cfg'}: ED/ES frames give cases "
                           f"{[c.identifier for c in found]}, the paper split names {expected}")
        cases += found

    testing = root / "testing"
    if testing.is_dir():
        folders = sorted(p for p in testing.iterdir() if p.is_dir() and re.fullmatch(r"patient\d{3}", p.name))
        if any(any(p.glob("*_gt.nii.gz")) for p in folders):
            for folder in folders:
                if (folder / "Info.cfg").is_file():
                    cases += _patient_cases(folder, OFFICIAL_TEST_SUBSET)
                else:
                    missing.append((folder.name, folder / "Info.cfg"))
        elif folders:
            notes.append(f"{testing} has no ground truth (_gt) files: "
                         f"its {len(folders)} patients were skipped")

    def make_splits(training: list[str]) -> list[Split]:
        fold0 = paper_fold(names["nnformer_train_70pat"], names["nnformer_val_10pat"], training)
        return paper_fold_then_cv(fold0, training, group=patient_of)

    return Conversion(
        spec=ACDC, cases=cases, label_map=LabelMap({0: 0, 1: 1, 2: 2, 3: 3}), make_splits=make_splits,
        description="ACDC cine MRI, ED and ES frames; nnFormer/UNETR++ 70/10/20 patient split "
                    "(fold 0 = paper train/val); imagesTs_official = challenge test patients 101-150",
        missing=missing, notes=notes,
    )
