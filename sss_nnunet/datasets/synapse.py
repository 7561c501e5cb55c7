"""Synapse / BTCV multi-organ CT (MICCAI 2015 "Beyond the Cranial Vault" RawData).

Raw layout (``--raw`` = ``RawData/`` or the folder holding it)::

    Training/img/img0001.nii.gz     CT, HU
    Training/label/label0001.nii.gz 0 background, 1..13 organs (specs.BTCV_LABELS)

The 30 labelled cases are the 30 names of the paper split (img0001-0010, 0021-0040).
Unlabelled ``Testing/`` images are not used.

Case names: the raw image name, ``img0001`` (as in the paper split), so the files are
``imagesTr/img0001_0000.nii.gz`` and ``labelsTr/img0001.nii.gz`` (Ts likewise).

- ``synapse`` -> Dataset801_Synapse8, the paper protocol: the 18 ``train_18`` cases in
  imagesTr, the 12 ``test_12`` cases in imagesTs/labelsTs; 8 organs renumbered
  1..8 (specs.SYNAPSE8_FROM_BTCV), the other 5 organs become background.
  The paper has no validation set, so ``splits_final.json`` is nnU-Net's default
  seeded 5-fold CV over the 18 training cases (fold 0 = 14 train / 4 val): model
  selection never sees a test case.
- ``btcv`` -> Dataset802_BTCV13: all 30 cases in imagesTr with all 13 organs, 5-fold CV
  (the "nnU-Net Revisited" protocol); imagesTs stays empty.
"""

from __future__ import annotations

from pathlib import Path

from sss_nnunet.datasets.common import Case, LabelMap, locate_root
from sss_nnunet.datasets.specs import BTCV13, BTCV_LABELS, SYNAPSE8, SYNAPSE8_FROM_BTCV, paper_splits
from sss_nnunet.datasets.splits import cross_validation
from sss_nnunet.datasets.writer import Conversion

ROOT_CANDIDATES = ("RawData", "Abdomen/RawData")


def _cases(root: Path, test: set[str]) -> list[Case]:
    split = paper_splits()["synapse"]
    cases = []
    for name in sorted(split["train_18"] + split["test_12"]):
        number = name.removeprefix("img")
        cases.append(Case(
            identifier=name,
            images=(root / "Training" / "img" / f"img{number}.nii.gz",),
            label=root / "Training" / "label" / f"label{number}.nii.gz",
            subset="Ts" if name in test else "Tr",
        ))
    return cases


def synapse8(raw: Path) -> Conversion:
    """The 8-organ paper dataset (18 train / 12 test)."""
    root = locate_root(raw, "Training/img", ROOT_CANDIDATES, "BTCV RawData")
    mapping = {0: 0} | {v: SYNAPSE8_FROM_BTCV.get(v, 0) for v in BTCV_LABELS}
    return Conversion(
        spec=SYNAPSE8,
        cases=_cases(root, set(paper_splits()["synapse"]["test_12"])),
        label_map=LabelMap(mapping),
        make_splits=cross_validation,
        description="Synapse multi-organ CT, 8 organs, TransUNet/nnFormer/UNETR++ 18/12 split; "
                    "folds: seeded 5-fold CV over the 18 training cases",
    )


def btcv13(raw: Path) -> Conversion:
    """The 13-organ BTCV dataset (30 cases, 5-fold CV)."""
    root = locate_root(raw, "Training/img", ROOT_CANDIDATES, "BTCV RawData")
    return Conversion(
        spec=BTCV13,
        cases=_cases(root, test=set()),
        label_map=LabelMap({0: 0} | {v: v for v in BTCV_LABELS}),
        make_splits=cross_validation,
        description="BTCV multi-organ CT, 13 organs, 30 labelled cases, seeded 5-fold CV",
    )
