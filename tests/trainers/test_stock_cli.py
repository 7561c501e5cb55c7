"""The stock nnU-Net console scripts with SSSTrainer: no fork, no set-up beyond `pip install`.

One tiny dataset goes through plan_and_preprocess -> train fold 0 -> resume (--c) ->
predict -> find_best_configuration, plus a user's own SSSTrainer subclass found through
nnUNet_extTrainer. Every command runs in a subprocess, exactly as a user types it.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from tests.trainers.stock import BIN, kill_when, run_stock, stock_env
from tests.trainers.tiny_dataset import write_tiny_dataset

DATASET = "Dataset977_Tiny"
pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def run(cmd: list[str], env: dict, timeout: int = 900) -> str:
    res = run_stock(cmd, env, timeout)
    out = res.stdout + res.stderr
    assert res.returncode == 0, f"{' '.join(cmd)} failed ({res.returncode}):\n{out[-4000:]}"
    return out


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("stock_cli")
    env = stock_env(root)
    write_tiny_dataset(root / "raw")
    run(["nnUNetv2_plan_and_preprocess", "-d", "977", "-c", "3d_fullres", "-np", "2", "-npfp", "2",
         "--verify_dataset_integrity"], env)
    return root, env


def results_folder(root: Path, trainer: str, dataset: str = DATASET, configuration: str = "3d_fullres") -> Path:
    return root / "results" / dataset / f"{trainer}__nnUNetPlans__{configuration}"


def checkpoint(root: Path, trainer: str, fold: str = "fold_0", **where: str) -> dict:
    return torch.load(results_folder(root, trainer, **where) / fold / "checkpoint_final.pth", weights_only=False,
                      map_location="cpu")


@pytest.fixture(scope="module")
def trained(workspace):
    root, env = workspace
    out = run(["nnUNetv2_train", "977", "3d_fullres", "0", "-tr", "SSSTrainer_tiny", "-device", "cpu"], env)
    return root, env, out


def test_train_fold0_with_the_stock_command(trained):
    root, _, out = trained
    ckpt = checkpoint(root, "SSSTrainer_tiny")
    assert ckpt["trainer_name"] == "SSSTrainer_tiny" and ckpt["current_epoch"] == 1
    assert any(k.startswith("encoder.") and "global_mix" in k for k in ckpt["network_weights"])
    assert "Using device: cpu" in out
    check_validation(root, results_folder(root, "SSSTrainer_tiny") / "fold_0" / "validation",
                     json.loads((root / "preprocessed" / DATASET / "splits_final.json").read_text())[0]["val"])


def check_validation(root: Path, folder: Path, cases: list[str]) -> None:
    """nnU-Net's validation of a fold: one prediction per validation case with the geometry of its raw label
    and only the dataset's labels, and a summary.json whose Dice is the Dice of those predictions."""
    labels = root / "raw" / DATASET / "labelsTr"
    assert sorted(p.name for p in folder.glob("*.nii.gz")) == sorted(f"{c}.nii.gz" for c in cases)
    summary = json.loads((folder / "summary.json").read_text())
    per_case = {Path(c["reference_file"]).name: c["metrics"] for c in summary["metric_per_case"]}
    assert sorted(per_case) == sorted(f"{c}.nii.gz" for c in cases)
    for c in cases:
        pred_img, ref_img = sitk.ReadImage(str(folder / f"{c}.nii.gz")), sitk.ReadImage(str(labels / f"{c}.nii.gz"))
        assert pred_img.GetSize() == ref_img.GetSize()
        assert np.allclose(pred_img.GetSpacing(), ref_img.GetSpacing())
        assert np.allclose(pred_img.GetOrigin(), ref_img.GetOrigin())
        assert np.allclose(pred_img.GetDirection(), ref_img.GetDirection())
        pred, ref = sitk.GetArrayFromImage(pred_img), sitk.GetArrayFromImage(ref_img)
        assert set(np.unique(pred)) <= {0, 1, 2}
        for label in (1, 2):
            p, r = pred == label, ref == label
            dice = 2 * (p & r).sum() / (p.sum() + r.sum()) if p.sum() + r.sum() else float("nan")
            reported = per_case[f"{c}.nii.gz"][str(label)]["Dice"]
            assert (np.isnan(dice) and np.isnan(reported)) or reported == pytest.approx(dice, abs=1e-6)


def test_learns_the_easy_set_in_twenty_tiny_epochs(workspace):
    """Learning, not only running: 20 epochs of SSSTrainer_tiny (40 iterations) through the stock nnUNetv2_train on
    the tiny set (a bright sphere and a small bright box in noise) reach nnU-Net's validation Dice thresholds.
    Measured with this command, fold 2, on 2 idle cores (2026-12-07), sphere / box / foreground mean: 5 runs of
    20 epochs 0.949-0.988 / 1.000 / 0.974-0.994. At 10 epochs one run of 5 here (0.046 / 0.976) and one CI run
    (0.25) left the sphere out: 20 iterations do not learn it reliably. After the one epoch the other tests
    train, fold 0 gave 0.05 (all-background passes those)."""
    root, env = workspace
    run(["nnUNetv2_train", "977", "3d_fullres", "2", "-tr", "SSSTrainer_tiny", "-device", "cpu"],
        dict(env, SSS_TINY_EPOCHS="20"))
    summary = json.loads((results_folder(root, "SSSTrainer_tiny") / "fold_2" / "validation" / "summary.json")
                         .read_text())
    assert summary["mean"]["1"]["Dice"] > 0.5, summary["mean"]  # the sphere
    assert summary["foreground_mean"]["Dice"] > 0.5, summary["mean"]


def test_resume_continues_from_the_checkpoint(trained):
    """--c restores the weights and the optimizer state of the checkpoint, not only the epoch counter: a
    marker put into one weight of the checkpoint survives (2 AdamW steps of lr <= 1e-3 move it by < 0.01),
    and AdamW's step count goes on from the checkpoint's (2 iterations per epoch)."""
    root, env, _ = trained
    path = results_folder(root, "SSSTrainer_tiny") / "fold_0" / "checkpoint_final.pth"
    ckpt = torch.load(path, weights_only=False, map_location="cpu")
    assert {int(s["step"]) for s in ckpt["optimizer_state"]["state"].values()} == {2}
    name = next(k for k, v in ckpt["network_weights"].items() if k.endswith(".bias") and v.ndim == 1)
    ckpt["network_weights"][name] = torch.full_like(ckpt["network_weights"][name], 3.0)
    torch.save(ckpt, path)
    out = run(["nnUNetv2_train", "977", "3d_fullres", "0", "-tr", "SSSTrainer_tiny", "-device", "cpu", "--c"],
              dict(env, SSS_TINY_EPOCHS="2"))
    assert "Epoch 1" in out and "Epoch 0" not in out  # only the missing epoch was trained
    resumed = checkpoint(root, "SSSTrainer_tiny")
    assert resumed["current_epoch"] == 2
    assert (resumed["network_weights"][name] - 3.0).abs().max() < 0.01, name
    assert {int(s["step"]) for s in resumed["optimizer_state"]["state"].values()} == {4}


def test_predict_rebuilds_the_network_from_the_checkpoint(trained):
    root, env, _ = trained
    images, out_dir = root / "raw" / DATASET / "imagesTs", root / "pred"
    run(["nnUNetv2_predict", "-i", str(images), "-o", str(out_dir), "-d", "977", "-c", "3d_fullres",
         "-tr", "SSSTrainer_tiny", "-f", "0", "-device", "cpu", "--disable_progress_bar"], env)
    preds = sorted(out_dir.glob("*.nii.gz"))
    assert [p.name for p in preds] == sorted(p.name for p in (root / "raw" / DATASET / "labelsTs").glob("*.nii.gz"))
    for p in preds:
        pred = sitk.ReadImage(str(p))
        ref = sitk.ReadImage(str(root / "raw" / DATASET / "labelsTs" / p.name))
        assert pred.GetSize() == ref.GetSize() and np.allclose(pred.GetSpacing(), ref.GetSpacing())
        assert set(np.unique(sitk.GetArrayFromImage(pred))) <= {0, 1, 2}


def test_find_best_configuration(trained):
    root, env, _ = trained
    out = run(["nnUNetv2_find_best_configuration", "977", "-c", "3d_fullres", "-tr", "SSSTrainer_tiny",
               "-f", "0"], env)
    assert "SSSTrainer_tiny" in out
    assert (root / "results" / DATASET / "inference_instructions.txt").is_file()


def test_a_user_subclass_in_their_own_folder(workspace, tmp_path):
    root, env = workspace
    own = tmp_path / "my_trainers"
    own.mkdir()
    (own / "my_lab_trainers.py").write_text(textwrap.dedent("""
        from sss_nnunet.trainers import SSSTrainer_tiny

        class MyLabTrainer(SSSTrainer_tiny):
            network_overrides = {"scan": "raster", "upsampler": "transposed"}
    """))
    env = dict(env, nnUNet_extTrainer=str(own))  # the user's own value: ours is appended, not replacing it
    run(["nnUNetv2_train", "977", "3d_fullres", "0", "-tr", "MyLabTrainer", "-device", "cpu"], env)
    ckpt = checkpoint(root, "MyLabTrainer")
    assert ckpt["trainer_name"] == "MyLabTrainer"
    assert any("ups.0.body.weight" == k.split("decoder.")[-1] for k in ckpt["network_weights"])  # transposed conv


def test_fold_all_trains_on_every_training_case(workspace):
    root, env = workspace
    run(["nnUNetv2_train", "977", "3d_fullres", "all", "-tr", "SSSTrainer_tiny", "-device", "cpu"], env)
    ckpt = checkpoint(root, "SSSTrainer_tiny", fold="fold_all")
    assert ckpt["trainer_name"] == "SSSTrainer_tiny" and ckpt["init_args"]["fold"] == "all"
    # fold "all": nnU-Net trains and validates on every training case -> a validation prediction for each
    every_case = sorted(p.name.removesuffix(".nii.gz") for p in (root / "raw" / DATASET / "labelsTr").glob("*.nii.gz"))
    assert len(every_case) == 6
    check_validation(root, results_folder(root, "SSSTrainer_tiny") / "fold_all" / "validation", every_case)


def test_region_dataset_trains_and_predicts(tmp_path):
    """A region-based dataset (BraTS style: overlapping regions, regions_class_order) through the stock CLI."""
    env = stock_env(tmp_path)
    folder = write_tiny_dataset(tmp_path / "raw", dataset_id=978, n_train=5, n_test=1, regions=True)
    run(["nnUNetv2_plan_and_preprocess", "-d", "978", "-c", "2d", "-np", "2", "-npfp", "2"], env)
    run(["nnUNetv2_train", "978", "2d", "0", "-tr", "SSSTrainer_tiny", "-device", "cpu"], env)
    ckpt = checkpoint(tmp_path, "SSSTrainer_tiny", dataset=folder.name, configuration="2d")
    heads = [v for k, v in ckpt["network_weights"].items() if k.startswith("decoder.heads.") and k.endswith(".weight")]
    assert heads and all(h.shape[0] == 2 for h in heads)  # one sigmoid output per region, no background channel
    out_dir = tmp_path / "pred"
    run(["nnUNetv2_predict", "-i", str(folder / "imagesTs"), "-o", str(out_dir), "-d", "978", "-c", "2d",
         "-tr", "SSSTrainer_tiny", "-f", "0", "-device", "cpu", "--disable_progress_bar"], env)
    preds = list(out_dir.glob("*.nii.gz"))
    assert len(preds) == 1
    assert set(np.unique(sitk.GetArrayFromImage(sitk.ReadImage(str(preds[0]))))) <= {0, 1, 2}


def test_training_killed_mid_epoch_resumes_with_c(workspace, tmp_path):
    """SIGKILL nnUNetv2_train (3 tiny epochs) as soon as its first checkpoint appears, then --c: every file left
    behind is complete (checkpoints load, JSON parses) and training goes on from that checkpoint to the end."""
    root, env = workspace
    env = dict(env, SSS_TINY_EPOCHS="3")
    fold = results_folder(root, "SSSTrainer_tiny") / "fold_1"
    cmd = [str(BIN / "nnUNetv2_train"), "977", "3d_fullres", "1", "-tr", "SSSTrainer_tiny", "-device", "cpu"]
    assert kill_when(cmd, env, lambda: (fold / "checkpoint_latest.pth").exists(), log=tmp_path / "killed.log"), \
        "training ended before writing its first checkpoint"
    assert not (fold / "checkpoint_final.pth").exists()
    for f in fold.rglob("*.pth"):
        assert torch.load(f, weights_only=False, map_location="cpu")["trainer_name"] == "SSSTrainer_tiny", f
    for f in fold.parent.rglob("*.json"):
        json.loads(f.read_text())
    saved_epoch = torch.load(fold / "checkpoint_latest.pth", weights_only=False)["current_epoch"]
    assert saved_epoch >= 1
    out = run(["nnUNetv2_train", *cmd[1:], "--c"], env)
    assert f"Epoch {saved_epoch}" in out and "Epoch 0\n" not in out and f"Epoch {saved_epoch - 1}\n" not in out
    final = checkpoint(root, "SSSTrainer_tiny", fold="fold_1")
    assert final["current_epoch"] == 3
    assert {int(s["step"]) for s in final["optimizer_state"]["state"].values()} == {2 * 3}  # 2 iterations / epoch


def _write_lowres_plans(root: Path) -> str:
    """nnUNetLowresPlans: the tiny dataset's nnUNetPlans plus the 3d_lowres (spacing x2) and 3d_cascade_fullres
    entries nnU-Net's planner writes for a large dataset (the tiny images are too small for it to plan them)."""
    pre = root / "preprocessed" / DATASET
    plans = json.loads((pre / "nnUNetPlans.json").read_text())
    full = plans["configurations"]["3d_fullres"]
    plans["plans_name"] = "nnUNetLowresPlans"
    plans["configurations"]["3d_lowres"] = {
        "inherits_from": "3d_fullres", "data_identifier": "nnUNetLowresPlans_3d_lowres",
        "spacing": [2 * s for s in full["spacing"]],
        "median_image_size_in_voxels": [max(1, round(s / 2)) for s in full["median_image_size_in_voxels"]],
        "batch_dice": False, "next_stage": "3d_cascade_fullres",
    }
    plans["configurations"]["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    (pre / "nnUNetLowresPlans.json").write_text(json.dumps(plans, indent=4))
    return "nnUNetLowresPlans"


def _check_predictions(root: Path, folder: Path) -> None:
    labels = root / "raw" / DATASET / "labelsTs"
    assert sorted(p.name for p in folder.glob("*.nii.gz")) == sorted(p.name for p in labels.glob("*.nii.gz"))
    for p in folder.glob("*.nii.gz"):
        pred, ref = sitk.ReadImage(str(p)), sitk.ReadImage(str(labels / p.name))
        assert pred.GetSize() == ref.GetSize() and np.allclose(pred.GetSpacing(), ref.GetSpacing())
        assert set(np.unique(sitk.GetArrayFromImage(pred))) <= {0, 1, 2}


def test_3d_lowres_and_cascade_through_the_stock_cli(workspace, tmp_path):
    """3d_lowres (preprocess, one tiny epoch on fold all, predict) feeds 3d_cascade_fullres (one tiny epoch on
    fold 0 with the lowres segmentations as extra input channels, predict with -prev_stage_predictions)."""
    root, env = workspace
    plans = _write_lowres_plans(root)
    images = root / "raw" / DATASET / "imagesTs"
    run(["nnUNetv2_preprocess", "-d", "977", "-plans_name", plans, "-c", "3d_lowres", "-np", "1"], env)
    run(["nnUNetv2_train", "977", "3d_lowres", "all", "-tr", "SSSTrainer_tiny", "-p", plans, "-device", "cpu"], env)
    lowres = root / "results" / DATASET / f"SSSTrainer_tiny__{plans}__3d_lowres"
    # validation on every case wrote the segmentations the cascade trains on
    next_stage = lowres / "predicted_next_stage" / "3d_cascade_fullres"
    assert {p.name.split(".")[0] for p in next_stage.iterdir()} == {f"tiny_{i:03d}" for i in range(6)}
    run(["nnUNetv2_predict", "-i", str(images), "-o", str(tmp_path / "lowres"), "-d", "977", "-c", "3d_lowres",
         "-tr", "SSSTrainer_tiny", "-p", plans, "-f", "all", "-device", "cpu", "--disable_progress_bar"], env)
    _check_predictions(root, tmp_path / "lowres")

    run(["nnUNetv2_train", "977", "3d_cascade_fullres", "0", "-tr", "SSSTrainer_tiny", "-p", plans, "-device", "cpu"],
        env)
    run(["nnUNetv2_predict", "-i", str(images), "-o", str(tmp_path / "cascade"), "-d", "977", "-c",
         "3d_cascade_fullres", "-tr", "SSSTrainer_tiny", "-p", plans, "-f", "0", "-device", "cpu",
         "-prev_stage_predictions", str(tmp_path / "lowres"), "--disable_progress_bar"], env)
    _check_predictions(root, tmp_path / "cascade")
    lo = torch.load(lowres / "fold_all" / "checkpoint_final.pth", weights_only=False, map_location="cpu")
    ca_weights = torch.load(lowres.with_name(f"SSSTrainer_tiny__{plans}__3d_cascade_fullres") / "fold_0" /
                            "checkpoint_final.pth", weights_only=False, map_location="cpu")["network_weights"]
    first = next(k for k, v in lo["network_weights"].items() if v.ndim == 5)
    assert lo["network_weights"][first].shape[1] == 1  # the image
    assert ca_weights[first].shape[1] == 1 + 2  # the image + one-hot of the 2 foreground labels of the lowres stage


def test_wrong_configuration_is_one_line_through_the_stock_command(workspace):
    root, env = workspace
    res = run_stock(["nnUNetv2_train", "977", "3d_lowres", "0", "-tr", "SSSTrainer_tiny", "-device", "cpu"], env)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if "3d_lowres" in line]
    assert len(lines) == 1 and "is not in the plans 'nnUNetPlans'" in lines[0], res.stderr[-2000:]
    assert "Available: " in lines[0] and "3d_fullres" in lines[0].split("Available: ")[1]


def test_foreign_checkpoint_is_one_line_through_the_stock_command(trained):
    """--c on a checkpoint written by another trainer (nnU-Net's own), and on one whose weights do not fit these
    plans: one message naming the file, no traceback, the checkpoint untouched."""
    root, env, _ = trained
    ckpt = checkpoint(root, "SSSTrainer_tiny")
    fold = results_folder(root, "SSSTrainer_tiny") / "fold_4"  # a fold no other test of this module trains
    fold.mkdir(parents=True)
    path = fold / "checkpoint_latest.pth"
    cmd = ["nnUNetv2_train", "977", "3d_fullres", "4", "-tr", "SSSTrainer_tiny", "-device", "cpu", "--c"]
    torch.save(dict(ckpt, trainer_name="nnUNetTrainer"), path)
    res = run_stock(cmd, env)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert f"{path} was written by trainer 'nnUNetTrainer', not 'SSSTrainer_tiny'" in res.stderr
    weights = dict(ckpt["network_weights"])
    weights.pop(next(iter(weights)))
    torch.save(dict(ckpt, network_weights=weights), path)
    res = run_stock(cmd, env)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert f"{path} does not match the network of these plans" in res.stderr
    assert torch.load(path, weights_only=False)["network_weights"].keys() == weights.keys()
