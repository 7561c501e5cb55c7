"""``sss-nnunet convert acdc``: ED/ES frames from Info.cfg, 70/10/20 patient split."""

from __future__ import annotations

from dataset_trees import (
    assert_nothing_written,
    check_image,
    check_label,
    identifiers,
    load_json,
    nnunet_splits,
    published_splits,
)

from sss_nnunet.datasets.acdc import patient_of
from tests.conftest import verify_with_nnunet

SPLIT = published_splits()["acdc"]
TRAIN, VAL, TEST = SPLIT["nnformer_train_70pat"], SPLIT["nnformer_val_10pat"], SPLIT["test_20pat_40vol"]
OFFICIAL = ["patient101_frame01", "patient101_frame10", "patient102_frame01", "patient102_frame11",
            "patient103_frame01", "patient103_frame12"]


def test_acdc_paper_dataset(raw_tree, nnunet_env, convert):
    db = raw_tree("acdc")
    rc, _, err = convert("acdc", "--raw", db.parent, "-np", "2")  # parent of database/ works too
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset803_ACDC"

    assert identifiers(folder / "imagesTr", True) == sorted(TRAIN + VAL)  # 160 volumes
    assert identifiers(folder / "labelsTr", False) == sorted(TRAIN + VAL)
    assert identifiers(folder / "imagesTs", True) == sorted(TEST)  # the paper's 40 test volumes only
    assert identifiers(folder / "labelsTs", False) == sorted(TEST)
    assert identifiers(folder / "imagesTs_official", True) == OFFICIAL  # challenge test patients
    assert identifiers(folder / "labelsTs_official", False) == OFFICIAL
    assert not list(folder.rglob("*4d*"))  # the 4D cine files are not used

    identity = {0: 0, 1: 1, 2: 2, 3: 3}
    for name, subset in [(n, "Tr") for n in TRAIN + VAL] + [(n, "Ts") for n in TEST] + \
                        [(n, "Ts_official") for n in OFFICIAL]:
        src = db / ("testing" if name in OFFICIAL else "training") / patient_of(name)
        check_label(folder / f"labels{subset}" / f"{name}.nii.gz", src / f"{name}_gt.nii.gz", identity)
        check_image(folder / f"images{subset}" / f"{name}_0000.nii.gz", src / f"{name}.nii.gz")

    ds = load_json(folder / "dataset.json")
    assert ds["labels"] == {"background": 0, "RV": 1, "MLV": 2, "LVC": 3}
    assert ds["numTraining"] == 160

    splits = load_json(nnunet_env["nnUNet_preprocessed"] / "Dataset803_ACDC" / "splits_final.json")
    assert len(splits) == 5
    assert splits[0] == {"train": sorted(TRAIN), "val": sorted(VAL)}  # the paper's 70 / 10 patients
    for fold in splits:
        assert sorted(fold["train"] + fold["val"]) == sorted(TRAIN + VAL)
        # grouped by patient: both frames of a patient on the same side
        assert not {patient_of(n) for n in fold["train"]} & {patient_of(n) for n in fold["val"]}
    assert splits[1:] == nnunet_splits(TRAIN + VAL, group=patient_of)[1:]  # nnU-Net's CV over patients
    verify_with_nnunet(folder)


def test_missing_info_cfg_field(raw_tree, nnunet_env, convert):
    db = raw_tree("acdc")
    cfg = db / "training" / "patient042" / "Info.cfg"
    cfg.write_text("ED: 1\nGroup: NOR\nHeight: 160.0\nNbFrame: 30\nWeight: 60.0\n")  # no ES
    rc, _, err = convert("acdc", "--raw", db)
    assert rc == 2
    assert str(cfg) in err and "ES" in err
    assert_nothing_written(nnunet_env)


def test_info_cfg_frames_not_in_paper_split(raw_tree, nnunet_env, convert):
    db = raw_tree("acdc")
    cfg = db / "training" / "patient001" / "Info.cfg"
    cfg.write_text(cfg.read_text().replace("ES: 12", "ES: 13"))
    rc, _, err = convert("acdc", "--raw", db)
    assert rc == 2 and str(cfg) in err and "patient001_frame13" in err
    assert_nothing_written(nnunet_env)


def test_testing_without_ground_truth_is_skipped(raw_tree, nnunet_env, convert):
    db = raw_tree("acdc")
    for gt in (db / "testing").rglob("*_gt.nii.gz"):
        gt.unlink()
    rc, out, err = convert("acdc", "--raw", db)
    assert rc == 0, err
    assert "no ground truth" in out
    folder = nnunet_env["nnUNet_raw"] / "Dataset803_ACDC"
    assert not (folder / "imagesTs_official").exists()
    assert identifiers(folder / "imagesTs", True) == sorted(TEST)


def test_absent_patient_with_allow_missing(raw_tree, nnunet_env, convert):
    db = raw_tree("acdc")
    for patient in ("patient004", "patient089", "patient002"):  # one each of train, val, test
        for f in (db / "training" / patient).iterdir():
            f.unlink()
        (db / "training" / patient).rmdir()
    rc, _, err = convert("acdc", "--raw", db)
    assert rc == 2 and str(db / "training" / "patient002" / "Info.cfg") in err
    assert_nothing_written(nnunet_env)

    rc, out, err = convert("acdc", "--raw", db, "--allow-missing")
    assert rc == 0, err
    assert all(p in out for p in ("patient004", "patient089", "patient002"))
    splits = load_json(nnunet_env["nnUNet_preprocessed"] / "Dataset803_ACDC" / "splits_final.json")
    assert splits[0]["train"] == sorted(n for n in TRAIN if not n.startswith("patient004"))
    assert splits[0]["val"] == sorted(n for n in VAL if not n.startswith("patient089"))
    folder = nnunet_env["nnUNet_raw"] / "Dataset803_ACDC"
    assert identifiers(folder / "imagesTs", True) == sorted(n for n in TEST if not n.startswith("patient002"))
