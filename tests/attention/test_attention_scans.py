"""--compare-scans: the same query with the scan switched in place (RWKVSSS.set_scan), weights untouched."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from sss_nnunet.attention.maps import attention_maps
from tests.attention.model_folder import write_image, write_model
from tests.attention.test_attention_cli import attention, results  # noqa: F401 (fixture)
from tests.attention.test_attention_maps import PATCH, QUERY, mixes, naive_weights, recorded_wkv_calls, tiny_net


@pytest.mark.parametrize("mode", ["raster", pytest.param("zigzag", marks=pytest.mark.slow)])
def test_switched_scan_equals_the_naive_formula(mode):
    net = tiny_net(3, "stage")
    x = torch.randn(1, 1, *PATCH[3], dtype=torch.float64)
    stage = attention_maps(net, x, QUERY[3])
    net.set_scan(mode)
    maps = attention_maps(net, x, QUERY[3])
    differs = 0
    for mm, before, (_, _, _, mix) in zip(maps, stage, mixes(net)):
        q = int(np.ravel_multi_index(mm.query_token, mm.stage_grid))
        expected = naive_weights(recorded_wkv_calls(net, x, mix), q, int(np.prod(mm.stage_grid)))
        np.testing.assert_allclose(mm.token_weights, expected, atol=1e-10, err_msg=f"{mode} {mm.name}")
        differs += not np.allclose(mm.token_weights, before.token_weights, atol=1e-6)
    assert differs > 0  # switching the scan changes what the query sees
    net.set_scan("stage")
    again = attention_maps(net, x, QUERY[3])
    for a, b in zip(again, stage):
        np.testing.assert_allclose(a.token_weights, b.token_weights, atol=1e-12)


def test_compare_scans_writes_every_mode_and_restores_the_scan(results, tmp_path):  # noqa: F811
    write_model(results)
    image = tmp_path / "case_0000.nii.gz"
    write_image(image)
    out = tmp_path / "out"
    assert attention("-tr", "SSSTrainer_tiny", "-i", image, "--voxel", 7, 15, 14, "--stages", 2, "--compare-scans",
                     "--out", out) == 0
    assert (out / "compare_scans.png").stat().st_size > 10_000
    summary = json.loads((out / "summary.json").read_text())
    distances = summary["compare_scans"]["mean_distance_mm"]
    assert set(distances) == {"raster", "zigzag", "stage"}
    arrays = {}
    for mode in distances:
        for name in ("stage2b0_global", "stage2b1_global"):  # SSSTrainer's blocks: the global mix only
            a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "scans" / mode / f"attention_{name}.nii.gz")))
            assert a.sum() == pytest.approx(1, abs=1e-3)
            arrays[mode, name] = a
    main = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "attention_stage2b0_global.nii.gz")))
    np.testing.assert_allclose(arrays["stage", "stage2b0_global"], main, atol=1e-7)  # SSSTrainer scans "stage"
    assert not np.allclose(arrays["raster", "stage2b0_global"], arrays["zigzag", "stage2b0_global"], atol=1e-7)
    # the local mix (on by default): its windows hold few tokens, so the scan order moves its weights visibly
    local = {mode: sitk.GetArrayFromImage(sitk.ReadImage(str(out / "scans" / mode / "attention_stage2b0_local.nii.gz")))
             for mode in distances}
    assert np.abs(local["raster"] - local["stage"]).sum() > 0.05, np.abs(local["raster"] - local["stage"]).sum()


@pytest.mark.slow
def test_compare_scans_shows_the_global_scan_difference_with_window_decay(results, tmp_path):  # noqa: F811
    """The same weights with the global mix's decay scaled by the window volume (SSSTrainer_decayWindow): the
    switched scan moves the global mix's map far more than with Vision-RWKV's sequence-length scaling."""
    image = tmp_path / "case_0000.nii.gz"
    write_image(image)
    change = {}
    for trainer in ("SSSTrainer_tiny", "SSSTrainer_decayWindow"):
        write_model(results, trainer)
        out = tmp_path / trainer
        assert attention("-tr", trainer, "-i", image, "--voxel", 7, 15, 14, "--stages", 2, "--compare-scans",
                         "--out", out) == 0
        maps = {mode: sitk.GetArrayFromImage(sitk.ReadImage(str(out / "scans" / mode / f"attention_{name}.nii.gz")))
                for mode in ("raster", "stage") for name in ["stage2b0_global"]}
        change[trainer] = float(np.abs(maps["raster"] - maps["stage"]).sum())
    print("L1 change of the global-mix map, raster vs stage scan:", change)
    assert change["SSSTrainer_decayWindow"] > 2 * change["SSSTrainer_tiny"], change
