"""Small pieces of the converters: Info.cfg parsing, regions, splits, 4D channel splitting."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from dataset_trees import msd_image, nnunet_splits, write_nifti

from sss_nnunet.datasets.acdc import read_info_cfg
from sss_nnunet.datasets.common import split_channels
from sss_nnunet.datasets.specs import BRATS_REGIONS
from sss_nnunet.datasets.splits import cross_validation
from sss_nnunet.datasets.writer import regions_class_order
from sss_nnunet.errors import SSSError


def test_read_info_cfg(tmp_path):
    cfg = tmp_path / "Info.cfg"
    cfg.write_text("ED: 1\nES: 12\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n")
    assert read_info_cfg(cfg) == {"ED": 1, "ES": 12}
    cfg.write_text("ED: 1\nES: twelve\n")
    with pytest.raises(SSSError, match="ES is 'twelve'"):
        read_info_cfg(cfg)
    cfg.write_text("Group: DCM\n")
    with pytest.raises(SSSError, match="missing field.*ED, ES"):
        read_info_cfg(cfg)
    cfg.write_text("ED 1\n")
    with pytest.raises(SSSError, match="line 1"):
        read_info_cfg(cfg)


def test_regions_class_order():
    assert regions_class_order(BRATS_REGIONS) == [1, 2, 3]
    with pytest.raises(ValueError):
        regions_class_order({"a": (1, 2), "b": (3,)})


def test_grouped_cross_validation():
    ids = [f"patient{p:03d}_frame{f:02d}" for p in range(1, 11) for f in (1, 9)]
    folds = cross_validation(ids, group=lambda x: x.split("_")[0])
    assert folds == nnunet_splits(ids, group=lambda x: x.split("_")[0])
    assert cross_validation(ids[::-1]) == nnunet_splits(ids)  # input order does not matter, as in nnU-Net
    assert len(folds) == 5
    assert sorted(n for f in folds for n in f["val"]) == sorted(ids)
    for f in folds:
        assert len(f["val"]) == 4  # two patients, both frames
    with pytest.raises(SSSError, match="at least 5 training patients, found 4"):
        cross_validation(ids[:8], group=lambda x: x.split("_")[0])


def test_split_channels_keeps_3d_geometry(tmp_path):
    path = write_nifti(tmp_path / "x.nii.gz", msd_image(3))
    image = sitk.ReadImage(str(path))
    vols = split_channels(image, 4, path)
    assert len(vols) == 4
    for c, vol in enumerate(vols):
        np.testing.assert_array_equal(sitk.GetArrayFromImage(vol), sitk.GetArrayFromImage(image)[c])
        assert vol.GetSpacing() == image.GetSpacing()[:3] and vol.GetOrigin() == image.GetOrigin()[:3]
    with pytest.raises(SSSError, match="expected a 4D image with 5 channels"):
        split_channels(image, 5, path)
