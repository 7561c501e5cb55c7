"""The built-in synthetic CT dataset: geometry, labels, HU, determinism, nnU-Net validity."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from sss_nnunet.datasets import synthetic
from sss_nnunet.errors import SSSError


def test_case_geometry_labels_and_intensities():
    case = synthetic.make_case(seed=3, index=1)
    assert case.image.shape == case.label.shape == synthetic.SHAPE
    assert case.image.dtype == np.int16 and case.label.dtype == np.uint8
    z, y, x = case.spacing
    assert z > 2 * y and y == x  # anisotropic, thick slices
    present = set(np.unique(case.label).tolist())
    assert present == set(synthetic.LABELS.values())  # every organ, including the small one
    sizes = {name: int((case.label == v).sum()) for name, v in synthetic.LABELS.items() if v}
    from scipy import ndimage

    assert ndimage.label(case.label == synthetic.LABELS["kidneys"])[1] == 2  # two kidneys, one label
    assert sizes["liver"] > 5 * sizes["gallbladder"] > 0  # organs of different sizes
    hu = case.image.astype(float)
    assert hu.min() < -900  # air around the body
    liver, kidney = hu[case.label == 1].mean(), hu[case.label == synthetic.LABELS["kidneys"]].mean()
    assert 60 < liver < 150 and kidney > liver  # contrast-enhanced soft tissue in HU


def test_cases_are_deterministic_and_test_cases_differ_from_training():
    a, b = synthetic.make_case(0, 2), synthetic.make_case(0, 2)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert not np.array_equal(a.image, synthetic.make_case(0, 2, "Ts").image)
    assert not np.array_equal(a.image, synthetic.make_case(1, 2).image)


def test_written_dataset_is_valid_for_nnunet(tmp_path):
    from tests.conftest import verify_with_nnunet

    folder = synthetic.write_synthetic_dataset(tmp_path, 990, num_train=4, num_test=2, progress=False)
    assert folder.name == "Dataset990_SSSDemo"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == synthetic.LABELS and meta["numTraining"] == 4
    assert len(list((folder / "imagesTs").iterdir())) == len(list((folder / "labelsTs").iterdir())) == 2
    verify_with_nnunet(folder)
    img = sitk.ReadImage(str(folder / "imagesTr" / "train_000_0000.nii.gz"))
    case = synthetic.make_case(0, 0)
    assert img.GetSize() == tuple(reversed(synthetic.SHAPE))
    assert np.allclose(img.GetSpacing(), tuple(reversed(case.spacing)))
    splits = json.loads((folder / "splits_final.json").read_text())
    assert all(not set(f["train"]) & set(f["val"]) for f in splits)
    assert sorted(c for f in splits for c in f["val"]) == [f"train_{i:03d}" for i in range(4)]


def test_existing_dataset_is_refused_and_nothing_half_written(tmp_path):
    synthetic.write_synthetic_dataset(tmp_path, 990, num_train=2, num_test=1, progress=False)
    with pytest.raises(SSSError, match="already exists"):
        synthetic.write_synthetic_dataset(tmp_path, 990, num_train=2, num_test=1, progress=False)
    with pytest.raises(SSSError, match="at least 2 training"):
        synthetic.write_synthetic_dataset(tmp_path / "other", 991, num_train=1, num_test=1, progress=False)
    assert not (tmp_path / "other").exists() or not any((tmp_path / "other").iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset990_SSSDemo"]
