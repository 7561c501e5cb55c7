"""``sss-nnunet convert isic2016|isic2017|isic2018`` on miniature official downloads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dataset_trees import assert_convert_fails, load_json
from isic_trees import (
    ISIC2016_TEST,
    ISIC2016_TRAIN,
    ISIC2017_TEST,
    ISIC2017_TRAIN,
    ISIC2017_VAL,
    ISIC2018_TRAIN,
    ISIC2018_VAL,
    build_isic2016,
    build_isic2017,
    build_isic2018,
    image_and_mask,
    isic_name,
)
from PIL import Image

from sss_nnunet.datasets import isic
from sss_nnunet.datasets.specs import SPECS
from tests.conftest import verify_with_nnunet

BUILD = {"isic2016": build_isic2016, "isic2017": build_isic2017, "isic2018": build_isic2018}


@pytest.fixture
def tree(tmp_path):
    def make(key: str):
        return BUILD[key](tmp_path / f"raw_{key}")
    return make


def names(numbers) -> list[str]:
    return sorted(isic_name(n) for n in numbers)


def cases(folder, channel: bool) -> list[str]:
    suffix = "_0000.png" if channel else ".png"
    return sorted(p.name.removesuffix(suffix) for p in folder.glob(f"*{suffix}"))


def png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


def check_case(out, raw_jpg, number: int, subset: str) -> None:
    """The image is the decoded JPEG (RGB, same size), the label its mask as 0/1."""
    name = isic_name(number)
    image = png(out / f"images{subset}" / f"{name}_0000.png")
    with Image.open(raw_jpg) as im:
        np.testing.assert_array_equal(image, np.asarray(im.convert("RGB")))
    label = png(out / f"labels{subset}" / f"{name}.png")
    _, mask = image_and_mask(number)
    assert label.dtype == np.uint8 and label.shape == mask.shape == image.shape[:2]
    np.testing.assert_array_equal(label, mask // 255)


def test_isic2016_official_split(tree, nnunet_env, convert):
    raw = tree("isic2016")
    rc, out, err = convert("isic2016", "--raw", raw)
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset806_ISIC2016"
    assert cases(folder / "imagesTr", True) == cases(folder / "labelsTr", False) == names(ISIC2016_TRAIN)
    assert cases(folder / "imagesTs", True) == cases(folder / "labelsTs", False) == names(ISIC2016_TEST)
    for n in ISIC2016_TRAIN:
        check_case(folder, raw / "ISBI2016_ISIC_Part1_Training_Data" / f"{isic_name(n)}.jpg", n, "Tr")
    for n in ISIC2016_TEST:
        check_case(folder, raw / "ISBI2016_ISIC_Part1_Test_Data" / f"{isic_name(n)}.jpg", n, "Ts")
    meta = load_json(folder / "dataset.json")
    assert meta["channel_names"] == {"0": "R", "1": "G", "2": "B"}
    assert meta["labels"] == {"background": 0, "lesion": 1}
    assert (meta["file_ending"], meta["overwrite_image_reader_writer"]) == (".png", "NaturalImage2DIO")
    assert (meta["numTraining"], meta["numTest"]) == (7, 3)
    splits = load_json(nnunet_env["nnUNet_preprocessed"] / "Dataset806_ISIC2016" / "splits_final.json")
    assert len(splits) == 5
    assert sorted(splits[0]["train"] + splits[0]["val"]) == names(ISIC2016_TRAIN)
    verify_with_nnunet(folder)


def test_natural_image_reader_reads_three_channels(tree, nnunet_env, convert):
    from nnunetv2.imageio.natural_image_reader_writer import NaturalImage2DIO

    convert("isic2016", "--raw", tree("isic2016"))
    folder = nnunet_env["nnUNet_raw"] / "Dataset806_ISIC2016"
    name = isic_name(ISIC2016_TRAIN[1])
    image, _ = NaturalImage2DIO().read_images([str(folder / "imagesTr" / f"{name}_0000.png")])
    seg, _ = NaturalImage2DIO().read_seg(str(folder / "labelsTr" / f"{name}.png"))
    h, w = image_and_mask(ISIC2016_TRAIN[1])[1].shape
    assert image.shape == (3, 1, h, w) and seg.shape == (1, 1, h, w)
    assert set(np.unique(seg)) == {0.0, 1.0}


def test_isic2017_seeded_7_3_split_and_official_test(tree, nnunet_env, convert):
    raw = tree("isic2017")
    rc, out, err = convert("isic2017", "--raw", raw)
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset807_ISIC2017"
    train, test = cases(folder / "imagesTr", True), cases(folder / "imagesTs", True)
    pool = names(ISIC2017_TRAIN + ISIC2017_VAL)
    assert len(test) == len(pool) - round(0.7 * len(pool)) == 3
    assert sorted(train + test) == pool and not set(train) & set(test)
    assert (train, test) == isic.random_split(pool, 3, isic.DEFAULT_SEED)
    assert cases(folder / "labelsTs", False) == test
    # the official Test_v2 images (in a subfolder of --raw) are kept apart
    assert cases(folder / "imagesTs_official", True) == cases(folder / "labelsTs_official", False) \
        == names(ISIC2017_TEST)
    check_case(folder, raw / "test" / "ISIC-2017_Test_v2_Data" / f"{isic_name(40)}.jpg", 40, "Ts_official")
    # superpixel PNGs, the metadata CSV and LICENSE files were not taken for images
    assert all(p.name.endswith("_0000.png") for p in folder.glob("images*/*"))
    assert "VM-UNet protocol: 7:3 split, seed 12345" in load_json(folder / "dataset.json")["description"]
    splits = load_json(nnunet_env["nnUNet_preprocessed"] / "Dataset807_ISIC2017" / "splits_final.json")
    assert all(sorted(f["train"] + f["val"]) == train for f in splits)


def test_isic2017_seed_changes_the_split(tree, nnunet_env, convert):
    raw = tree("isic2017")
    assert convert("isic2017", "--raw", raw, "--seed", "3")[0] == 0
    folder = nnunet_env["nnUNet_raw"] / "Dataset807_ISIC2017"
    test = cases(folder / "imagesTs", True)
    pool = names(ISIC2017_TRAIN + ISIC2017_VAL)
    assert test == isic.random_split(pool, 3, 3)[1] != isic.random_split(pool, 3, isic.DEFAULT_SEED)[1]


def test_isic2018_without_official_test_ground_truth(tree, nnunet_env, convert):
    raw = tree("isic2018")
    rc, out, err = convert("isic2018", "--raw", raw)
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset808_ISIC2018"
    pool = names(ISIC2018_TRAIN + ISIC2018_VAL)
    assert sorted(cases(folder / "imagesTr", True) + cases(folder / "imagesTs", True)) == pool
    assert len(cases(folder / "imagesTs", True)) == 12 - round(0.7 * 12)
    assert not (folder / "imagesTs_official").exists()
    assert "official test set" in out and "not found" in out
    n = ISIC2018_VAL[0]
    subset = "Tr" if isic_name(n) in cases(folder / "imagesTr", True) else "Ts"
    check_case(folder, raw / "ISIC2018_Task1-2_Validation_Input" / f"{isic_name(n)}.jpg", n, subset)


def test_peer_split_sizes():
    layout = isic.LAYOUTS
    assert isic.peer_test_size(layout["isic2017"], 2150) == 650  # VM-UNet: 1500 / 650
    assert isic.peer_test_size(layout["isic2018"], 2694) == 808  # VM-UNet: 1886 / 808
    assert isic.peer_test_size(layout["isic2017"], 100) == 30
    names_ = [f"ISIC_{i:07d}" for i in range(2150)]
    train, test = isic.random_split(names_[::-1], 650, 7)
    assert (len(train), len(test)) == (1500, 650) and sorted(train + test) == names_
    assert isic.random_split(names_, 650, 7) == (train, test)  # input order does not matter


@pytest.mark.parametrize("form", ["json", "txt"])
def test_split_file(tree, nnunet_env, convert, tmp_path, form):
    raw = tree("isic2017")
    test = [isic_name(11), isic_name(30)]
    if form == "json":
        split = tmp_path / "split.json"
        train = [f"{isic_name(n)}.jpg" for n in ISIC2017_TRAIN if n != 11]
        split.write_text(json.dumps({"train": train, "test": [f"{t}.png" for t in test]}))
    else:
        split = tmp_path / "test.txt"
        split.write_text("\n".join(test) + "\n")
    rc, out, err = convert("isic2017", "--raw", raw, "--split", split)
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset807_ISIC2017"
    assert cases(folder / "imagesTs", True) == test
    expected_train = names(ISIC2017_TRAIN + ISIC2017_VAL) if form == "txt" else names(ISIC2017_TRAIN)
    assert cases(folder / "imagesTr", True) == sorted(set(expected_train) - set(test))
    if form == "json":
        assert "2 image(s) of the download are in neither part" in out


def test_resize(tree, nnunet_env, convert):
    raw = tree("isic2016")
    rc, out, err = convert("isic2016", "--raw", raw, "--resize", "12x20")
    assert rc == 0, err
    folder = nnunet_env["nnUNet_raw"] / "Dataset806_ISIC2016"
    for p in folder.glob("images*/*.png"):
        assert png(p).shape == (12, 20, 3)
    for p in folder.glob("labels*/*.png"):
        label = png(p)
        assert label.shape == (12, 20) and set(np.unique(label)) <= {0, 1} and label.any()
    # the mask is resized bilinearly and thresholded at 0.5
    n = ISIC2016_TRAIN[0]
    _, mask = image_and_mask(n)
    soft = np.asarray(Image.fromarray((mask / 255).astype(np.float32)).resize((20, 12), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(png(folder / "labelsTr" / f"{isic_name(n)}.png"), soft >= 0.5)
    assert "resized to 12x20" in load_json(folder / "dataset.json")["description"]


# ----------------------------------------------------------------------------- bad input
fails = assert_convert_fails


def mask_path(raw, n):
    return raw / "ISIC-2017_Training_Part1_GroundTruth" / f"{isic_name(n)}_segmentation.png"


def test_missing_mask(tree, nnunet_env, convert):
    raw = tree("isic2017")
    mask_path(raw, 13).unlink()
    fails(convert, nnunet_env, ["isic2017", "--raw", raw], mask_path(raw, 13), "not found")


def test_mask_of_the_wrong_size(tree, nnunet_env, convert):
    raw = tree("isic2017")
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(mask_path(raw, 14))
    fails(convert, nnunet_env, ["isic2017", "--raw", raw], mask_path(raw, 14), "mask size 6x5", "differs")


def test_non_binary_mask(tree, nnunet_env, convert):
    raw = tree("isic2017")
    _, mask = image_and_mask(15)
    mask[0, 0] = 128
    Image.fromarray(mask).save(mask_path(raw, 15))
    fails(convert, nnunet_env, ["isic2017", "--raw", raw], mask_path(raw, 15), "not a binary mask", "128")


def test_colour_mask(tree, nnunet_env, convert):
    raw = tree("isic2017")
    _, mask = image_and_mask(16)
    Image.fromarray(np.stack([mask] * 3, axis=-1)).save(mask_path(raw, 16))
    fails(convert, nnunet_env, ["isic2017", "--raw", raw], mask_path(raw, 16), "single-channel")


def test_unreadable_image(tree, nnunet_env, convert):
    raw = tree("isic2016")
    bad = raw / "ISBI2016_ISIC_Part1_Test_Data" / f"{isic_name(5)}.jpg"
    bad.write_bytes(b"not a jpeg")
    fails(convert, nnunet_env, ["isic2016", "--raw", raw], bad, "unreadable image")


def test_missing_ground_truth_folder(tree, nnunet_env, convert):
    raw = tree("isic2016")
    import shutil
    shutil.rmtree(raw / "ISBI2016_ISIC_Part1_Test_GroundTruth")
    fails(convert, nnunet_env, ["isic2016", "--raw", raw], raw, "ISBI2016_ISIC_Part1_Test_GroundTruth not found")


def test_image_in_two_parts(tree, nnunet_env, convert):
    raw = tree("isic2017")
    dup = raw / "ISIC-2017_Validation_Data" / f"{isic_name(12)}.jpg"
    dup.write_bytes((raw / "ISIC-2017_Training_Data" / f"{isic_name(12)}.jpg").read_bytes())
    fails(convert, nnunet_env, ["isic2017", "--raw", raw], dup, "the same image in two parts")


def test_bad_options(tree, nnunet_env, convert, tmp_path):
    raw = tree("isic2017")
    fails(convert, nnunet_env, ["isic2017", "--raw", raw, "--resize", "0x5"], "--resize", "HEIGHTxWIDTH")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": [isic_name(10)], "test": [isic_name(99)]}))
    fails(convert, nnunet_env, ["isic2017", "--raw", raw, "--split", split], split, "ISIC_0000099",
          "not in the download")
    split.write_text("{")
    fails(convert, nnunet_env, ["isic2017", "--raw", raw, "--split", split], split, "not valid JSON")
    fails(convert, nnunet_env, ["isic2016", "--raw", raw, "--seed", "1"], "--seed", "official")
    fails(convert, nnunet_env, ["acdc", "--raw", raw, "--resize", "256"], "--resize", "only apply to the ISIC")


def test_specs_are_2d_png_datasets():
    for key in ("isic2016", "isic2017", "isic2018"):
        spec = SPECS[key]
        assert (spec.file_ending, spec.reader_writer, spec.labels) == (".png", "NaturalImage2DIO", {1: "lesion"})
    assert [SPECS[k].dataset_id for k in ("isic2016", "isic2017", "isic2018")] == [806, 807, 808]


# ----------------------------------------------------------------------------- stock nnU-Net, 2D
@pytest.mark.slow
@pytest.mark.e2e
def test_plan_train_predict_evaluate_with_the_stock_cli(tmp_path):
    """A converted ISIC 2016 tree: nnUNetv2_plan_and_preprocess -c 2d, nnUNetv2_train ... 2d 0 -tr
    SSSTrainer_tiny (three input channels), nnUNetv2_predict on imagesTs, sss-nnunet evaluate."""
    import torch

    from tests.trainers.stock import run_stock, stock_env

    env = stock_env(tmp_path)
    raw = build_isic2016(tmp_path / "download")

    def run(cmd: list[str]) -> str:
        res = run_stock(cmd, env)
        assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{(res.stdout + res.stderr)[-4000:]}"
        return res.stdout + res.stderr

    run(["sss-nnunet", "convert", "isic2016", "--raw", str(raw), "--resize", "32x48", "-np", "1"])
    folder = tmp_path / "raw" / "Dataset806_ISIC2016"
    run(["nnUNetv2_plan_and_preprocess", "-d", "806", "-c", "2d", "-np", "2", "-npfp", "2",
         "--verify_dataset_integrity"])
    plans = load_json(tmp_path / "preprocessed" / "Dataset806_ISIC2016" / "nnUNetPlans.json")
    assert plans["image_reader_writer"] == "NaturalImage2DIO"
    run(["nnUNetv2_train", "806", "2d", "0", "-tr", "SSSTrainer_tiny", "-device", "cpu"])
    model = tmp_path / "results" / "Dataset806_ISIC2016" / "SSSTrainer_tiny__nnUNetPlans__2d"
    ckpt = torch.load(model / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    first_conv = next(v for v in ckpt["network_weights"].values() if v.ndim == 4)
    assert first_conv.shape[1] == 3  # R, G, B
    pred = tmp_path / "pred"
    run(["nnUNetv2_predict", "-i", str(folder / "imagesTs"), "-o", str(pred), "-d", "806", "-c", "2d",
         "-tr", "SSSTrainer_tiny", "-f", "0", "-device", "cpu", "--disable_progress_bar"])
    assert cases(pred, False) == names(ISIC2016_TEST)
    for name in names(ISIC2016_TEST):
        p = png(pred / f"{name}.png")
        assert p.shape == (32, 48) and set(np.unique(p)) <= {0, 1}
    out = run(["sss-nnunet", "evaluate", "--pred", str(pred), "--gt", str(folder / "labelsTs"),
               "--dataset", "isic2016", "--quiet"])
    assert "wrote metrics.csv" in out
    summary = load_json(pred / "evaluation_paper" / "summary.json")
    assert summary["n_cases"] == len(ISIC2016_TEST) and 0 <= summary["pooled"]["dsc"] <= 1


# ----------------------------------------------------------------------------- training script
SCRIPT = Path(__file__).resolve().parents[2] / "training_scripts" / "run_training_isic.sh"


def run_script(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        env[var] = str(tmp_path / var)
    env["nnUNet_extTrainer"] = str(tmp_path / "ext")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])  # an activated venv
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("key", "size"), [("isic2016", "512"), ("isic2017", "256"), ("isic2018", "256")])
def test_training_script_dry_run(tmp_path, key, size):
    dataset_id = SPECS[key].dataset_id
    result = run_script(tmp_path, key, "--dry-run", "--raw", "/data/isic archives")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        f"sss-nnunet convert {key} --raw /data/isic\\ archives -d {dataset_id} --resize {size}",
        f"nnUNetv2_plan_and_preprocess -d {dataset_id} -c 2d --verify_dataset_integrity --clean",
        f"nnUNetv2_train {dataset_id} 2d 0 -tr SSSTrainer",
    ]
    assert not (tmp_path / "nnUNet_raw").exists()


def test_training_script_options(tmp_path):
    result = run_script(tmp_path, "isic2018", "-f", "all", "--dry-run", "--raw", "/r", "--resize", "none", "--seed",
                        "7", "-np", "2", "-tr", "SSSTrainer_tiny", "--", "-device", "cpu")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "sss-nnunet convert isic2018 --raw /r -d 808 -np 2 --seed 7",
        "nnUNetv2_plan_and_preprocess -d 808 -c 2d --verify_dataset_integrity --clean -np 2",
    ] + [f"nnUNetv2_train 808 2d {f} -tr SSSTrainer_tiny -device cpu" for f in range(5)]
    result = run_script(tmp_path, "isic2017", "--dry-run", "--raw", "/r", "--resize", "128x160", "--split", "t.txt")
    assert result.stdout.splitlines()[0] == \
        "sss-nnunet convert isic2017 --raw /r -d 807 --resize 128x160 --split t.txt"
    assert "-c CONFIG       nnU-Net configuration (default 2d)" in run_script(tmp_path, "isic2017", "--help").stdout
    for args, words in ((["--dry-run"], "give the dataset first"), (["isic2019"], "unknown dataset 'isic2019'"),
                        (["isic2016", "--resize"], "--resize needs a value")):
        result = run_script(tmp_path, *args)
        assert result.returncode == 2 and words in result.stderr, result.stderr
