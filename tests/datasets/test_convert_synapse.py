"""``sss-nnunet convert synapse`` (8-organ paper dataset) and ``--btcv13`` (13 organs)."""

from __future__ import annotations

from dataset_trees import (
    check_image,
    check_label,
    identifiers,
    load_json,
    nnunet_splits,
    published_splits,
)

from sss_nnunet.datasets.specs import BTCV_LABELS, SYNAPSE8_FROM_BTCV
from tests.conftest import verify_with_nnunet

SPLIT = published_splits()["synapse"]


def test_synapse8_paper_dataset(raw_tree, nnunet_env, convert):
    raw = raw_tree("synapse")
    rc, out, err = convert("synapse", "--raw", raw)
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset801_Synapse8"
    assert str(folder) in out

    # the paper's 18 / 12 cases, test cases only in imagesTs/labelsTs
    assert identifiers(folder / "imagesTr", True) == sorted(SPLIT["train_18"])
    assert identifiers(folder / "labelsTr", False) == sorted(SPLIT["train_18"])
    assert identifiers(folder / "imagesTs", True) == sorted(SPLIT["test_12"])
    assert identifiers(folder / "labelsTs", False) == sorted(SPLIT["test_12"])

    # 8 organs renumbered 1..8, the other 5 organs -> background, voxel by voxel; geometry kept
    mapping = {0: 0} | {v: SYNAPSE8_FROM_BTCV.get(v, 0) for v in BTCV_LABELS}
    for subset, names in (("Tr", SPLIT["train_18"]), ("Ts", SPLIT["test_12"])):
        for name in names:
            number = name.removeprefix("img")
            check_label(folder / f"labels{subset}" / f"{name}.nii.gz",
                        raw / "Training" / "label" / f"label{number}.nii.gz", mapping)
            check_image(folder / f"images{subset}" / f"{name}_0000.nii.gz",
                        raw / "Training" / "img" / f"img{number}.nii.gz")

    ds = load_json(folder / "dataset.json")
    assert ds["labels"] == {"background": 0, "spleen": 1, "right_kidney": 2, "left_kidney": 3,
                            "gallbladder": 4, "liver": 5, "stomach": 6, "aorta": 7, "pancreas": 8}
    assert ds["channel_names"] == {"0": "CT"}
    assert (ds["numTraining"], ds["file_ending"]) == (18, ".nii.gz")

    # no validation set in the paper: nnU-Net's default seeded 5-fold CV over the 18 training cases
    splits = load_json(nnunet_env["nnUNet_preprocessed"] / "Dataset801_Synapse8" / "splits_final.json")
    assert splits == load_json(folder / "splits_final.json")
    assert splits == nnunet_splits(SPLIT["train_18"])
    assert len(splits) == 5
    for fold in splits:
        assert sorted(fold["train"] + fold["val"]) == sorted(SPLIT["train_18"])
        assert not set(fold["train"] + fold["val"]) & set(SPLIT["test_12"])

    verify_with_nnunet(folder)


def test_btcv13_dataset(raw_tree, nnunet_env, convert):
    raw = raw_tree("synapse")
    rc, _, err = convert("synapse", "--btcv13", "--raw", raw.parent)  # the folder above RawData works too
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset802_BTCV13"
    everything = sorted(SPLIT["train_18"] + SPLIT["test_12"])
    assert identifiers(folder / "imagesTr", True) == everything
    assert identifiers(folder / "imagesTs", True) == []
    identity = {v: v for v in range(14)}
    for name in everything:
        check_label(folder / "labelsTr" / f"{name}.nii.gz",
                    raw / "Training" / "label" / f"label{name.removeprefix('img')}.nii.gz", identity)
    ds = load_json(folder / "dataset.json")
    assert ds["labels"] == {"background": 0, **{n: v for v, n in BTCV_LABELS.items()}}
    splits = load_json(nnunet_env["nnUNet_preprocessed"] / "Dataset802_BTCV13" / "splits_final.json")
    assert splits == nnunet_splits(everything)
    assert sorted(n for fold in splits for n in fold["val"]) == everything  # each case validated once
    verify_with_nnunet(folder)
