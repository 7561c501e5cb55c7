"""``sss-nnunet convert brats``: MSD Task01 (4D images) and BraTS 2021, region dataset.json."""

from __future__ import annotations

import numpy as np
from dataset_trees import (
    BRATS2021_CASES,
    assert_nothing_written,
    check_image,
    check_label,
    geometry,
    identifiers,
    load_json,
    msd_image,
    nnunet_splits,
    published_splits,
    read,
    write_nifti,
)

from tests.conftest import verify_with_nnunet

SPLIT = published_splits()["brats_msd_task01"]
REGIONS = {"background": 0, "WT": [1, 2, 3], "TC": [2, 3], "ET": [3]}


def test_brats_msd_paper_dataset(raw_tree, nnunet_env, convert):
    task = raw_tree("brats_msd")
    rc, _, err = convert("brats", "--raw", task.parent)
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset804_BraTSMSD"
    train_val = sorted(SPLIT["train_387"] + SPLIT["val_73"])
    assert identifiers(folder / "imagesTr", True) == train_val
    assert identifiers(folder / "labelsTr", False) == train_val
    assert identifiers(folder / "imagesTs", True) == sorted(SPLIT["test_24"])
    assert identifiers(folder / "labelsTs", False) == sorted(SPLIT["test_24"])

    # 4D -> 4 channels, each with the 3D part of the geometry; labels kept as they are
    for name in ["BRATS_001", "BRATS_058", "BRATS_484"] + SPLIT["val_73"][:3]:
        subset = "Ts" if name in SPLIT["test_24"] else "Tr"
        raw_arr, raw_img = read(task / "imagesTr" / f"{name}.nii.gz")
        assert raw_arr.shape[0] == 4
        for c in range(4):
            arr, img = read(folder / f"images{subset}" / f"{name}_{c:04d}.nii.gz")
            np.testing.assert_array_equal(arr, raw_arr[c])
            assert img.GetSpacing() == raw_img.GetSpacing()[:3]
            assert img.GetOrigin() == raw_img.GetOrigin()[:3]
            direction4 = np.reshape(raw_img.GetDirection(), (4, 4))
            assert img.GetDirection() == tuple(direction4[:3, :3].ravel())
        assert not (folder / f"images{subset}" / f"{name}_0004.nii.gz").exists()
    for name in train_val + SPLIT["test_24"]:
        subset = "Ts" if name in SPLIT["test_24"] else "Tr"
        check_label(folder / f"labels{subset}" / f"{name}.nii.gz", task / "labelsTr" / f"{name}.nii.gz",
                    {0: 0, 1: 1, 2: 2, 3: 3})

    ds = load_json(folder / "dataset.json")
    assert ds["labels"] == REGIONS and list(ds["labels"]) == list(REGIONS)
    assert ds["regions_class_order"] == [1, 2, 3]
    assert ds["channel_names"] == {"0": "FLAIR", "1": "T1w", "2": "T1gd", "3": "T2w"}
    assert ds["numTraining"] == 460

    splits = load_json(nnunet_env["nnUNet_preprocessed"] / "Dataset804_BraTSMSD" / "splits_final.json")
    assert splits[0] == {"train": sorted(SPLIT["train_387"]), "val": sorted(SPLIT["val_73"])}
    assert splits[1:] == nnunet_splits(train_val)[1:]
    for fold in splits:
        assert sorted(fold["train"] + fold["val"]) == train_val
    verify_with_nnunet(folder)


def test_brats2021_dataset(raw_tree, nnunet_env, convert):
    top = raw_tree("brats2021")
    rc, _, err = convert("brats", "--raw", top.parent)  # layout detected, known folder name found
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset805_BraTS2021"
    assert identifiers(folder / "imagesTr", True) == BRATS2021_CASES
    assert identifiers(folder / "imagesTs", True) == []
    for name in BRATS2021_CASES:
        for c, modality in enumerate(("flair", "t1", "t1ce", "t2")):  # FLAIR, T1w, T1gd, T2w
            check_image(folder / "imagesTr" / f"{name}_{c:04d}.nii.gz",
                        top / name / f"{name}_{modality}.nii.gz")
        # raw 1 NCR, 2 ED, 4 ET -> 2, 1, 3
        check_label(folder / "labelsTr" / f"{name}.nii.gz", top / name / f"{name}_seg.nii.gz",
                    {0: 0, 1: 2, 2: 1, 4: 3})
    ds = load_json(folder / "dataset.json")
    assert ds["labels"] == REGIONS and ds["regions_class_order"] == [1, 2, 3]
    splits = load_json(nnunet_env["nnUNet_preprocessed"] / "Dataset805_BraTS2021" / "splits_final.json")
    assert splits == nnunet_splits(BRATS2021_CASES)
    verify_with_nnunet(folder)


def test_msd_wrong_number_of_channels(raw_tree, nnunet_env, convert):
    task = raw_tree("brats_msd")
    bad = task / "imagesTr" / "BRATS_123.nii.gz"
    write_nifti(bad, msd_image(0)[:3])
    rc, _, err = convert("brats", "--raw", task)
    assert rc == 2 and str(bad) in err and "4 channels" in err
    assert_nothing_written(nnunet_env)


def test_brats2021_label_values_of_msd_rejected(raw_tree, nnunet_env, convert):
    top = raw_tree("brats2021")
    seg = top / "BraTS2021_00005" / "BraTS2021_00005_seg.nii.gz"
    arr, img = read(seg)
    arr[arr == 4] = 3  # an MSD-style label in a BraTS 2021 file
    write_nifti(seg, arr)
    assert geometry(read(seg)[1]) == geometry(img)
    rc, _, err = convert("brats2021", "--raw", top)
    assert rc == 2 and str(seg) in err and "[3]" in err
    assert_nothing_written(nnunet_env)


def test_brats2021_missing_modality(raw_tree, nnunet_env, convert):
    top = raw_tree("brats2021")
    t1ce = top / "BraTS2021_00003" / "BraTS2021_00003_t1ce.nii.gz"
    t1ce.unlink()
    rc, _, err = convert("brats2021", "--raw", top)
    assert rc == 2 and str(t1ce) in err
    assert_nothing_written(nnunet_env)
    rc, out, err = convert("brats2021", "--raw", top, "--allow-missing")
    assert rc == 0, err
    assert "BraTS2021_00003" in out and str(t1ce) in out
    folder = nnunet_env["nnUNet_raw"] / "Dataset805_BraTS2021"
    assert identifiers(folder / "imagesTr", True) == [n for n in BRATS2021_CASES if n != "BraTS2021_00003"]
