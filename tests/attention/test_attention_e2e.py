"""End to end with the stock CLI: plan, train a tiny SSSTrainer model, then ``sss-nnunet attention`` on a test
case in a subprocess, exactly as a user runs it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from tests.trainers.stock import run_stock, stock_env
from tests.trainers.tiny_dataset import write_tiny_dataset

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def run(cmd, env):
    res = run_stock(cmd, env)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{(res.stdout + res.stderr)[-4000:]}"
    return res.stdout


def test_attention_of_a_model_trained_with_the_stock_commands(tmp_path):
    env = stock_env(tmp_path)
    raw = write_tiny_dataset(tmp_path / "raw", dataset_id=978)
    run(["nnUNetv2_plan_and_preprocess", "-d", "978", "-c", "3d_fullres", "-np", "2", "-npfp", "2"], env)
    run(["nnUNetv2_train", "978", "3d_fullres", "0", "-tr", "SSSTrainer_tiny", "-device", "cpu"], env)
    image = raw / "imagesTs" / "tiny_006_0000.nii.gz"
    out = tmp_path / "attention"
    printed = run(["sss-nnunet", "attention", "-d", "978", "-tr", "SSSTrainer_tiny", "-c", "3d_fullres", "-f", "0",
                   "-i", str(image), "--voxel", "8", "16", "16", "--out", str(out), "-device", "cpu"], env)
    lines = printed.splitlines()
    assert any(line.startswith("stage 2:") for line in lines) and any(line.startswith("stage 3:") for line in lines)
    ref = sitk.ReadImage(str(image))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["query"]["image"] == [8, 16, 16] and len(summary["maps"]) == 8  # 2 stages x 2 blocks x 2 mixes
    assert {m["mix"] for m in summary["maps"]} == {"global", "local"}  # SSSTrainer's blocks: the paper's two mixes
    for m in summary["maps"]:
        img = sitk.ReadImage(str(out / f"attention_stage{m['stage']}b{m['block']}_{m['mix']}.nii.gz"))
        assert img.GetSize() == ref.GetSize() and np.allclose(img.GetSpacing(), ref.GetSpacing())
        assert np.allclose(img.GetOrigin(), ref.GetOrigin()) and np.allclose(img.GetDirection(), ref.GetDirection())
        assert sitk.GetArrayFromImage(img).sum() == pytest.approx(m["weight_in_image"], abs=1e-4)
    assert (out / "summary.png").stat().st_size > 10_000 and (out / "stage2.png").is_file()
