"""``sss-nnunet export`` and ``sss-nnunet predict --onnx`` end to end on the built-in demo dataset,
against the stock ``nnUNetv2_predict`` of the same checkpoint; and their one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from sss_nnunet.datasets import synthetic
from sss_nnunet.deploy import require
from sss_nnunet.errors import SSSError
from sss_nnunet.io import OWNER_FILE
from tests.trainers.stock import BIN, run_stock, stock_env

DATASET = 996


def run(cmd: list[str], env: dict, timeout: int = 1800) -> str:
    out = run_stock(cmd, env, timeout)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out.stdout


def dice_per_class(a: np.ndarray, b: np.ndarray, labels) -> dict[int, float]:
    """Dice of label c between segmentations a and b (1.0 where c is in neither)."""
    out = {}
    for c in labels:
        x, y = a == c, b == c
        total = int(x.sum() + y.sum())
        out[c] = 1.0 if total == 0 else 2 * int((x & y).sum()) / total
    return out


def _larger_case(images: Path) -> None:
    """A test case larger than the patch (so the sliding window runs several Gaussian-weighted tiles):
    the first test image padded with air to 30 x 64 x 64 voxels."""
    src = sorted(images.glob("*_0000.nii.gz"))[0]
    img = sitk.ReadImage(str(src))
    arr = sitk.GetArrayFromImage(img)
    big = np.full((30, 64, 64), -1000, arr.dtype)
    big[3:3 + arr.shape[0], 8:8 + arr.shape[1], 8:8 + arr.shape[2]] = arr
    out = sitk.GetImageFromArray(big)
    out.SetSpacing(img.GetSpacing())
    out.SetDirection(img.GetDirection())
    sitk.WriteImage(out, str(images / "large_000_0000.nii.gz"))


EPOCHS = 8  # x 2 iterations. Which classes such a model predicts is chance (a CI run predicted only 0 and 1),
# so the test asserts what makes the comparison sensitive instead: see `_swaps_and_mirrors_would_show`.


def _swaps_and_mirrors_would_show(probabilities: list[np.ndarray], tolerance: float) -> None:
    """Fails unless a channel swap or a mirrored axis in the prediction would move some probability by more
    than ``tolerance`` (the allowed ONNX-vs-PyTorch gap): every two class maps differ somewhere, and no map
    is symmetric along any spatial axis. Each item: (classes, D, H, W) probabilities of one case. Measured
    on one 8-epoch model: classes 0.06-1.0 apart, asymmetry 0.82-0.92 (the export itself is checked on
    random input to 1e-3 in every channel by ``sss-nnunet export``, independent of training)."""
    n = probabilities[0].shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            apart = max(float(np.abs(p[i] - p[j]).max()) for p in probabilities)
            assert apart > tolerance, f"classes {i} and {j} have near-equal probabilities ({apart:.2e}): " \
                "a swap of their channels would pass unnoticed"
    for axis in (1, 2, 3):
        asym = max(float(np.abs(p - np.flip(p, axis)).max()) for p in probabilities)
        assert asym > tolerance, f"probabilities symmetric along axis {axis} ({asym:.2e}): a mirror would pass"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    pytest.importorskip("onnxruntime")
    root = tmp_path_factory.mktemp("deploy")
    env = stock_env(root)
    env["SSS_TINY_EPOCHS"] = str(EPOCHS)
    raw = synthetic.write_synthetic_dataset(root / "raw", DATASET, 4, 2, 0)
    _larger_case(raw / "imagesTs")
    run(["nnUNetv2_plan_and_preprocess", "-d", str(DATASET), "-c", "3d_fullres", "-np", "1", "-npfp", "1"], env)
    run(["nnUNetv2_train", str(DATASET), "3d_fullres", "0", "-tr", "SSSTrainer_tiny", "-device", "cpu"], env)
    return root, env, raw


@pytest.mark.slow
@pytest.mark.e2e
def test_onnx_segmentations_equal_pytorch(trained):
    root, env, raw = trained
    export = root / "export"
    out = run(["sss-nnunet", "export", "-d", str(DATASET), "-c", "3d_fullres", "-f", "0", "-tr", "SSSTrainer_tiny",
               "--out", str(export)], env)
    assert "max abs difference" in out
    manifest = json.loads((export / "manifest.json").read_text())
    assert manifest["input"]["shape"][2:] == manifest["patch_size"] and manifest["check"]["max_abs_difference"] < 1e-3
    assert {p.name for p in export.iterdir()} == {"model.onnx", "plans.json", "dataset.json", "manifest.json",
                                                   OWNER_FILE}
    # a second export to the same folder is refused with one line, the first one untouched
    again = run_stock(["sss-nnunet", "export", "-d", str(DATASET), "-c", "3d_fullres", "-f", "0", "-tr",
                       "SSSTrainer_tiny", "--out", str(export)], env)
    assert again.returncode == 2 and "already exists" in again.stderr and len(again.stderr.strip().splitlines()) == 1
    # --overwrite onto the model folder itself: refused before anything is written, the model kept
    models = Path(env["nnUNet_results"])
    model_dir = next(models.glob("Dataset*/SSSTrainer_tiny__nnUNetPlans__3d_fullres"))
    before = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*"))
    onto = run_stock(["sss-nnunet", "export", "-d", str(DATASET), "-c", "3d_fullres", "-f", "0", "-tr",
                      "SSSTrainer_tiny", "--out", str(model_dir), "--overwrite"], env)
    assert onto.returncode == 2 and "holds the input" in onto.stderr, onto.stderr
    assert sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*")) == before

    images = raw / "imagesTs"
    run(["nnUNetv2_predict", "-i", str(images), "-o", str(root / "pred_torch"), "-d", str(DATASET), "-c",
         "3d_fullres", "-tr", "SSSTrainer_tiny", "-f", "0", "-device", "cpu", "-npp", "1", "-nps", "1",
         "--disable_progress_bar", "--save_probabilities"], env)
    run(["sss-nnunet", "predict", "--onnx", str(export), "-i", str(images), "-o", str(root / "pred_onnx"),
         "-npp", "1", "-nps", "1", "--disable_progress_bar", "--save_probabilities"], env)
    labels = sorted(synthetic.LABELS.values())
    cases = sorted(p.name for p in (root / "pred_torch").glob("*.nii.gz"))
    assert len(cases) == 3 and cases == sorted(p.name for p in (root / "pred_onnx").glob("*.nii.gz"))
    tolerance, probabilities = 2e-2, []
    for name in cases:
        a = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "pred_torch" / name)))
        b = sitk.GetArrayFromImage(sitk.ReadImage(str(root / "pred_onnx" / name)))
        assert a.shape == b.shape
        case = name.removesuffix(".nii.gz")
        pa = np.load(root / "pred_torch" / f"{case}.npz")["probabilities"]
        pb = np.load(root / "pred_onnx" / f"{case}.npz")["probabilities"]
        assert pa.shape == pb.shape == (len(labels), *a.shape)
        probabilities.append(pa)
        # The networks agree to ~3e-4 in float32 logits (onnxruntime's own rounding; both PyTorch backends are
        # within 4e-6 of float64), but nnU-Net's predictor sums the sliding window in float16 with Gaussian
        # weights near 1e-3 at tile corners: measured 6.6e-3 in probability at the large case's corner voxels.
        # A wrong export (an axis, a channel, a mirror) moves probabilities by O(0.1).
        gap = float(np.abs(pa - pb).max())
        assert gap < tolerance, f"{name}: class probabilities ONNX vs PyTorch differ by up to {gap:.2e}"
        # labels may differ only where PyTorch itself is torn between the two classes (a near-tie that a
        # difference below `gap` can flip); anything else is a wrong export, not rounding
        diff = a != b
        margin = np.take_along_axis(pa, a[None].astype(np.int64), 0)[0] - np.take_along_axis(
            pa, b[None].astype(np.int64), 0)[0]
        assert diff.mean() < 1e-3 and (margin[diff] <= 2 * gap + 1e-6).all(), (
            f"{name}: {int(diff.sum())} voxels labelled differently, margins up to {margin[diff].max():.2e} "
            f"(probability gap {gap:.2e}); Dice per class {dice_per_class(a, b, labels)}")
        # issue 27's target, where one near-tie voxel cannot decide it: Dice >= 0.999 for classes of >= 1000 voxels
        dice = dice_per_class(a, b, labels)
        assert all(dice[c] >= 0.999 for c in labels if (a == c).sum() >= 1000), f"{name}: Dice per class {dice}"
    _swaps_and_mirrors_would_show(probabilities, tolerance)


def test_missing_packages_give_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails as when it is not installed
    with pytest.raises(SSSError, match=r"pip install 'sss-nnunet\[deploy\]'"):
        require("onnxruntime")


def test_predict_rejects_a_folder_without_manifest(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "c1_0000.nii.gz").write_bytes(b"")
    out = subprocess.run([str(BIN / "sss-nnunet"), "predict", "--onnx", str(tmp_path), "-i", str(tmp_path / "in"),
                          "-o", str(tmp_path / "out")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 2
    assert "manifest.json: missing" in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_export_overwrites_only_an_export_and_never_the_model_folder(tmp_path):
    """--out of sss-nnunet export: --overwrite may replace an earlier export (written by export, or an
    old one holding only the export's files), not a folder with other files, nor the model folder or
    a folder above it (with the old rules, --overwrite deleted any of them after a successful export)."""
    from sss_nnunet.deploy.export import output_rules
    from sss_nnunet.io import atomic_directory, check_output_dir

    model = tmp_path / "Dataset005_X" / "SSSTrainer__nnUNetPlans__3d_fullres"
    (model / "fold_0").mkdir(parents=True)
    for out in (model, tmp_path / "Dataset005_X"):  # the model folder, or a folder above it
        with pytest.raises(SSSError, match="holds the input"):
            check_output_dir(out, **output_rules(model, True))
    other = tmp_path / "mine"
    (other / "sub").mkdir(parents=True)
    (other / "sub" / "data.txt").write_text("keep")
    with pytest.raises(SSSError, match="--overwrite"):
        check_output_dir(other, **output_rules(model, True))
    assert (other / "sub" / "data.txt").read_text() == "keep"
    old = tmp_path / "old_export"
    old.mkdir()
    for name in ("model.onnx", "manifest.json", "plans.json", "dataset.json"):
        (old / name).write_text("{}")
    check_output_dir(old, **output_rules(model, True))  # an export written before the owner manifest
    with pytest.raises(SSSError, match="already exists"):
        check_output_dir(old, **output_rules(model, False))
    new = tmp_path / "new_export"
    with atomic_directory(new, **output_rules(model, False)) as tmp:
        (tmp / "model.onnx").write_text("{}")
    check_output_dir(new, **output_rules(model, True))  # its own export: replaceable


def test_export_names_the_missing_model_folder(tmp_path, monkeypatch):
    from sss_nnunet.deploy.export import model_folder

    monkeypatch.setenv("nnUNet_results", str(tmp_path))
    (tmp_path / "Dataset005_X").mkdir()
    with pytest.raises(SSSError, match="SSSTrainer__nnUNetPlans__3d_fullres: no such model folder"):
        model_folder("5", "SSSTrainer", "nnUNetPlans", "3d_fullres")
    with pytest.raises(SSSError, match="no trained dataset with id 7"):
        model_folder("7", "SSSTrainer", "nnUNetPlans", "3d_fullres")
    (tmp_path / "Dataset005_Y").mkdir()
    with pytest.raises(SSSError, match="several datasets with id 5 .Dataset005_X, Dataset005_Y.: give -d the full"):
        model_folder("5", "SSSTrainer", "nnUNetPlans", "3d_fullres")
    monkeypatch.delenv("nnUNet_results")
    with pytest.raises(SSSError, match="nnUNet_results is not set"):
        model_folder("5", "SSSTrainer", "nnUNetPlans", "3d_fullres")


def test_the_sensitivity_check_fails_on_equal_channels_and_symmetric_maps():
    rng = np.random.default_rng(0)
    p = rng.random((3, 4, 5, 6))
    _swaps_and_mirrors_would_show([p], 2e-2)
    equal = p.copy()
    equal[2] = equal[1] + 1e-3
    with pytest.raises(AssertionError, match="classes 1 and 2"):
        _swaps_and_mirrors_would_show([equal], 2e-2)
    symmetric = (p + np.flip(p, 2)) / 2
    with pytest.raises(AssertionError, match="axis 2"):
        _swaps_and_mirrors_would_show([symmetric], 2e-2)


def test_predict_arguments_are_checked_before_any_model_is_loaded(tmp_path):
    """An empty input folder, -o on the input folder and out-of-range numbers: one line each, with no
    export folder needed (the checks run first)."""
    import argparse

    from sss_nnunet.deploy import onnx_predict

    parser = argparse.ArgumentParser()
    onnx_predict.add_arguments(parser)
    images = tmp_path / "in"
    images.mkdir()

    def args(*extra: str) -> argparse.Namespace:
        return parser.parse_args(["--onnx", str(tmp_path / "none"), "-i", str(images), "-o", str(tmp_path / "o"),
                                  *extra])

    with pytest.raises(SSSError, match="no input case"):
        onnx_predict.check_arguments(args())
    (images / "c1_0000.nii.gz").write_bytes(b"")
    onnx_predict.check_arguments(args())
    for extra, words in ((["-o", str(images)], "is the input folder"), (["-step_size", "0"], "must be > 0"),
                         (["-npp", "0"], "-npp 0: must be at least 1"), (["-nps", "-1"], "-nps -1"),
                         (["-threads", "-2"], "-threads -2")):
        with pytest.raises(SSSError, match=words):
            onnx_predict.check_arguments(args(*extra))
