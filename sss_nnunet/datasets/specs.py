"""What each supported dataset is: default nnU-Net ids and names, label maps, regions.

Shared by the converters (``sss_nnunet.datasets``) and the evaluation
(``sss_nnunet.evaluation``) so that both agree on label values.
Converted label maps are consecutive (nnU-Net requires 0..N).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class DatasetSpec:
    key: str                      # short name used on the command line
    dataset_id: int               # default nnU-Net id
    name: str                     # DatasetNNN_<name>
    channel_names: dict[str, str]
    # converted label value -> class name (background 0 excluded)
    labels: dict[int, str]
    file_ending: str = ".nii.gz"
    # region name -> converted label values (BraTS); empty for label datasets
    regions: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # nnU-Net reader/writer class named in dataset.json ("overwrite_image_reader_writer"); "" = nnU-Net's choice
    reader_writer: str = ""

    @property
    def folder_name(self) -> str:
        return f"Dataset{self.dataset_id:03d}_{self.name}"


# BTCV label values in the raw download (0 = background).
BTCV_LABELS: dict[int, str] = {
    1: "spleen", 2: "right_kidney", 3: "left_kidney", 4: "gallbladder", 5: "esophagus",
    6: "liver", 7: "stomach", 8: "aorta", 9: "inferior_vena_cava",
    10: "portal_and_splenic_vein", 11: "pancreas", 12: "right_adrenal_gland",
    13: "left_adrenal_gland",
}
# Paper protocol (TransUNet / nnFormer / UNETR++): 8 organs, raw BTCV value -> converted value.
SYNAPSE8_FROM_BTCV: dict[int, int] = {1: 1, 2: 2, 3: 3, 4: 4, 6: 5, 7: 6, 8: 7, 11: 8}

SYNAPSE8 = DatasetSpec(
    key="synapse", dataset_id=801, name="Synapse8", channel_names={"0": "CT"},
    labels={new: BTCV_LABELS[old] for old, new in SYNAPSE8_FROM_BTCV.items()},
)
BTCV13 = DatasetSpec(
    key="btcv", dataset_id=802, name="BTCV13", channel_names={"0": "CT"}, labels=dict(BTCV_LABELS),
)
ACDC = DatasetSpec(
    key="acdc", dataset_id=803, name="ACDC", channel_names={"0": "cineMRI"},
    labels={1: "RV", 2: "MLV", 3: "LVC"},
)
# BraTS, converted: 1 edema, 2 non-enhancing tumour / necrosis, 3 enhancing tumour.
# (BraTS 2021 raw labels 1 NCR, 2 ED, 4 ET map to 2, 1, 3.)
BRATS_REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (2, 3), "ET": (3,)}
BRATS_CHANNELS = {"0": "FLAIR", "1": "T1w", "2": "T1gd", "3": "T2w"}
BRATS_MSD = DatasetSpec(
    key="brats", dataset_id=804, name="BraTSMSD", channel_names=dict(BRATS_CHANNELS),
    labels={1: "edema", 2: "non_enhancing_tumor", 3: "enhancing_tumor"}, regions=dict(BRATS_REGIONS),
)
BRATS2021 = DatasetSpec(
    key="brats2021", dataset_id=805, name="BraTS2021", channel_names=dict(BRATS_CHANNELS),
    labels={1: "edema", 2: "necrosis", 3: "enhancing_tumor"}, regions=dict(BRATS_REGIONS),
)

# ISIC skin lesion segmentation (Task 1): RGB dermoscopy, one PNG per image read by nnU-Net's
# NaturalImage2DIO as three channels; converted masks 0 background, 1 lesion.
RGB_CHANNELS = {"0": "R", "1": "G", "2": "B"}


def _isic(year: int, dataset_id: int) -> DatasetSpec:
    return DatasetSpec(
        key=f"isic{year}", dataset_id=dataset_id, name=f"ISIC{year}", channel_names=dict(RGB_CHANNELS),
        labels={1: "lesion"}, file_ending=".png", reader_writer="NaturalImage2DIO",
    )


ISIC2016, ISIC2017, ISIC2018 = _isic(2016, 806), _isic(2017, 807), _isic(2018, 808)
ISIC_KEYS = ("isic2016", "isic2017", "isic2018")

SPECS: dict[str, DatasetSpec] = {
    s.key: s for s in (SYNAPSE8, BTCV13, ACDC, BRATS_MSD, BRATS2021, ISIC2016, ISIC2017, ISIC2018)
}


@cache
def paper_splits() -> dict:
    """The paper case lists (copied from the steering repo's reference/paper_splits.json)."""
    text = resources.files("sss_nnunet.datasets").joinpath("paper_splits.json").read_text()
    return json.loads(text)
