"""BraTS brain tumour MRI: the MSD Task01_BrainTumour release and BraTS 2021.

Both become region datasets: converted labels 1 edema, 2 necrosis / non-enhancing
tumour, 3 enhancing tumour; nnU-Net trains the regions WT (1,2,3), TC (2,3), ET (3)
(dataset.json ``labels`` with lists, ``regions_class_order`` [1, 2, 3]). Channels
0000 FLAIR, 0001 T1w, 0002 T1gd, 0003 T2w.

MSD (``--raw`` = ``Task01_BrainTumour/`` or the folder holding it) -> Dataset804_BraTSMSD::

    imagesTr/BRATS_001.nii.gz   4D, 4th axis = FLAIR, T1w, T1gd, T2w
    labelsTr/BRATS_001.nii.gz   1 edema, 2 non-enhancing tumour, 3 enhancing (kept as is)

  Case name ``BRATS_001`` (as in the paper split). The 484 labelled cases: the paper's
  387 train + 73 val in imagesTr, its 24 test cases in imagesTs/labelsTs; the unlabelled
  MSD ``imagesTs`` is not used. Fold 0 = the paper's 387 / 73; folds 1-4 = folds 1-4 of
  a seeded 5-fold CV over the 460.

BraTS 2021 (``--raw`` = the folder holding the case folders) -> Dataset805_BraTS2021::

    BraTS2021_00000/BraTS2021_00000_{flair,t1,t1ce,t2}.nii.gz
    BraTS2021_00000/BraTS2021_00000_seg.nii.gz   1 NCR, 2 ED, 4 ET -> 2, 1, 3

  Case name ``BraTS2021_00000``; every case folder found goes to imagesTr; seeded
  5-fold CV (the "nnU-Net Revisited" protocol), no test set.
"""

from __future__ import annotations

import re
from pathlib import Path

from sss_nnunet.datasets.common import Case, LabelMap, locate_root
from sss_nnunet.datasets.specs import BRATS2021, BRATS_MSD, paper_splits
from sss_nnunet.datasets.splits import Split, cross_validation, paper_fold, paper_fold_then_cv
from sss_nnunet.datasets.writer import Conversion
from sss_nnunet.errors import SSSError

MSD_CHANNELS = 4
BRATS2021_MODALITIES = ("flair", "t1", "t1ce", "t2")  # the order of specs.BRATS_CHANNELS
BRATS2021_FROM_RAW = {0: 0, 1: 2, 2: 1, 4: 3}  # raw 1 NCR, 2 ED, 4 ET -> converted
BRATS2021_CASE = re.compile(r"BraTS2021_\d{5}")
BRATS2021_FOLDERS = ("RSNA_ASNR_MICCAI_BraTS2021_TrainingData_16July2021", "BraTS2021_TrainingData")


def brats_msd(raw: Path) -> Conversion:
    """MSD Task01_BrainTumour with the 387/73/24 split."""
    root = locate_root(raw, "imagesTr", ("Task01_BrainTumour",), "MSD Task01_BrainTumour")
    split = paper_splits()["brats_msd_task01"]
    test = set(split["test_24"])
    cases = [
        Case(name, (root / "imagesTr" / f"{name}.nii.gz",), root / "labelsTr" / f"{name}.nii.gz",
             subset="Ts" if name in test else "Tr", channels_per_file=MSD_CHANNELS)
        for name in sorted(split["train_387"] + split["val_73"] + split["test_24"])
    ]

    def make_splits(training: list[str]) -> list[Split]:
        return paper_fold_then_cv(paper_fold(split["train_387"], split["val_73"], training), training)

    return Conversion(
        spec=BRATS_MSD, cases=cases, label_map=LabelMap({0: 0, 1: 1, 2: 2, 3: 3}), make_splits=make_splits,
        description="MSD Task01 BraTS (FLAIR, T1w, T1gd, T2w); nnFormer/UNETR++ 387/73/24 split "
                    "(fold 0 = paper train/val); regions WT, TC, ET",
    )


def brats2021_root(raw: Path) -> Path | None:
    """The folder holding the ``BraTS2021_XXXXX`` case folders, or None."""
    raw = Path(raw).expanduser()
    for folder in (raw, *(raw / f for f in BRATS2021_FOLDERS)):
        if folder.is_dir() and any(BRATS2021_CASE.fullmatch(p.name) and p.is_dir() for p in folder.iterdir()):
            return folder.resolve()
    return None


def brats2021(raw: Path) -> Conversion:
    """BraTS 2021 training data, all cases in imagesTr, 5-fold CV."""
    root = brats2021_root(raw)
    if root is None:
        if not Path(raw).expanduser().is_dir():
            raise SSSError(f"{raw}: raw data folder not found")
        raise SSSError(f"{raw}: not the BraTS 2021 layout (expected folders BraTS2021_XXXXX)")
    cases = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and BRATS2021_CASE.fullmatch(p.name)):
        name = folder.name
        cases.append(Case(name, tuple(folder / f"{name}_{m}.nii.gz" for m in BRATS2021_MODALITIES),
                          folder / f"{name}_seg.nii.gz"))
    return Conversion(
        spec=BRATS2021, cases=cases, label_map=LabelMap(BRATS2021_FROM_RAW), make_splits=cross_validation,
        description="BraTS 2021 (FLAIR, T1w, T1gd, T2w), raw labels 1 NCR, 2 ED, 4 ET -> 2, 1, 3; "
                    "seeded 5-fold CV; regions WT, TC, ET",
    )


def brats(raw: Path) -> Conversion:
    """MSD or BraTS 2021, whichever layout ``raw`` has."""
    try:
        return brats_msd(raw)
    except SSSError as msd_error:
        if not Path(raw).expanduser().is_dir():
            raise
        if brats2021_root(raw) is not None:
            return brats2021(raw)
        raise SSSError(f"{msd_error}, nor the BraTS 2021 layout (folders BraTS2021_XXXXX)") from None
