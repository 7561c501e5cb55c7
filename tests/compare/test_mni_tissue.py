"""`sss-nnunet convert mni152`: real ICBM152 template files (as nilearn ships them) -> nnU-Net raw dataset.

Tested on a miniature tree with nilearn's file names and data types (uint8, 1 mm, RAS-flipped
direction as in the package): an ellipsoid brain with a grey-matter shell and white-matter core."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sss_nnunet.datasets import mni_tissue
from sss_nnunet.errors import SSSError
from tests.conftest import SSS_NNUNET

SSS = SSS_NNUNET


def write_mini_template(folder: Path, shape=(40, 48, 40)) -> Path:
    """(D, H, W) 1 mm uint8 volumes named as in nilearn/datasets/data."""
    folder.mkdir(parents=True, exist_ok=True)
    z, y, x = np.meshgrid(*(np.arange(n) - (n - 1) / 2 for n in shape), indexing="ij")
    r = np.sqrt((z / 16) ** 2 + (y / 20) ** 2 + (x / 16) ** 2)
    wm = np.clip((0.7 - r) / 0.1, 0, 1)
    gm = np.clip((1.0 - r) / 0.1, 0, 1) - wm
    t1 = 0.45 * gm + 0.8 * wm
    for key, arr in (("t1", t1), ("gm", gm), ("wm", wm)):
        img = sitk.GetImageFromArray(np.rint(255 * arr).astype(np.uint8))
        img.SetDirection((-1, 0, 0, 0, -1, 0, 0, 0, 1))
        sitk.WriteImage(img, str(folder / mni_tissue.FILES[key]))
    return folder


def test_labels_are_the_tissue_argmax():
    gm = np.array([0.6, 0.2, 0.1, 0.4])
    wm = np.array([0.3, 0.7, 0.1, 0.3])
    assert mni_tissue.tissue_labels(gm, wm).tolist() == [1, 2, 0, 1]


def test_converted_dataset(tmp_path):
    src = write_mini_template(tmp_path / "nilearn_data")
    folder = mni_tissue.write_mni_tissue_dataset(tmp_path / "raw", src, num_train=3, num_test=2, spacing=2.0)
    assert folder.name == "Dataset992_MNI152Tissue"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == mni_tissue.LABELS and meta["channel_names"] == {"0": "T1"}
    images = sorted((folder / "imagesTr").glob("*.nii.gz")) + sorted((folder / "imagesTs").glob("*.nii.gz"))
    labels = sorted((folder / "labelsTr").glob("*.nii.gz")) + sorted((folder / "labelsTs").glob("*.nii.gz"))
    assert [p.name for p in images][-2:] == ["test_000_0000.nii.gz", "test_001_0000.nii.gz"] and len(labels) == 5
    arrays = [sitk.GetArrayFromImage(sitk.ReadImage(str(p))) for p in labels]
    for lab in arrays:
        assert set(np.unique(lab)) == {0, 1, 2} and lab.shape == arrays[0].shape
    img = sitk.ReadImage(str(images[0]))
    assert img.GetSpacing() == (2.0, 2.0, 2.0)
    a = sitk.GetArrayFromImage(img)
    assert a.shape == arrays[0].shape and a.max() > 300
    # white matter is brighter than grey matter (real T1 contrast carried over), cases differ
    lab0 = arrays[0]
    assert a[lab0 == 2].mean() > a[lab0 == 1].mean() + 100
    assert not np.array_equal(arrays[0], arrays[3])  # a test case is its own deformation
    again = mni_tissue.make_subject(*mni_tissue.load_template(mni_tissue.source_files(src), 2.0), 2.0, 0, "Tr", 0)
    assert np.array_equal(again[1], lab0)  # deterministic


def test_missing_source_file_is_named(tmp_path):
    src = write_mini_template(tmp_path / "d")
    (src / mni_tissue.FILES["wm"]).unlink()
    with pytest.raises(SSSError, match="mni_icbm152_wm_tal_nlin_sym_09a_converted"):
        mni_tissue.write_mni_tissue_dataset(tmp_path / "raw", src)
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").iterdir())


def test_convert_cli(tmp_path):
    src = write_mini_template(tmp_path / "d")
    env = {**os.environ, "nnUNet_raw": str(tmp_path / "raw")}
    (tmp_path / "raw").mkdir()
    cmd = [SSS, "convert", "mni152", "--raw", str(src), "--train-cases", "2", "--test-cases", "1", "--spacing", "3"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "2 training and 1 test cases" in res.stdout
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 2 and "already exists" in res.stderr and len(res.stderr.strip().splitlines()) == 1
