"""``sss-nnunet attention`` on model folders as nnU-Net writes them: geometry, files, query modes, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk

from sss_nnunet import cli
from tests.attention.model_folder import DATASET, attention, write_image, write_model


def same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize() == b.GetSize() and np.allclose(a.GetSpacing(), b.GetSpacing())
            and np.allclose(a.GetOrigin(), b.GetOrigin()) and np.allclose(a.GetDirection(), b.GetDirection()))


@pytest.mark.parametrize("transpose, shape", [((0, 1, 2), (16, 30, 44)),
                                              pytest.param((2, 0, 1), (14, 30, 36), marks=pytest.mark.slow)])
def test_maps_are_written_in_the_input_geometry(results, tmp_path, capsys, transpose, shape):
    """A case larger than the patch (all weight on image voxels) and one smaller (zero-padded patch)."""
    write_model(results, transpose=transpose)
    image = tmp_path / "case_0000.nii.gz"
    ref = write_image(image, shape)
    out = tmp_path / "out"
    assert attention("-tr", "SSSTrainer_tiny", "-i", image, "--voxel", 7, 15, 14, "--out", out) == 0
    printed = capsys.readouterr().out
    assert "stage 2:" in printed and "stage 3:" in printed and "query voxel (7, 15, 14)" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert summary["query"]["image"] == [7, 15, 14]
    assert len(summary["maps"]) == 8  # SSSTrainer on 4 stages: 2 blocks at stages 2 and 3, global + local mix each
    padded = shape[0] < 16
    for m in summary["maps"]:
        name = f"stage{m['stage']}b{m['block']}_{m['mix']}"
        assert abs(m["weight_sum_per_channel"][0] - 1) < 1e-4 and abs(m["weight_sum_per_channel"][1] - 1) < 1e-4
        img = sitk.ReadImage(str(out / f"attention_{name}.nii.gz"))
        assert same_geometry(img, ref), name
        assert same_geometry(sitk.ReadImage(str(out / f"attention_{name}_spread.nii.gz")), ref)
        a = sitk.GetArrayFromImage(img)
        assert a.min() >= 0 and a.sum() == pytest.approx(m["weight_in_image"], abs=1e-4), name
        assert m["weight_in_image"] < 0.999 if padded else m["weight_in_image"] == pytest.approx(1, abs=1e-5)
        assert a[:2].sum() == 0 and a[:, :, -5:].sum() == 0  # nothing outside nnU-Net's crop
    assert {p.name for p in out.glob("*.png")} == {"stage2.png", "stage3.png", "summary.png"}
    if transpose == (0, 1, 2):  # a rerun with fewer stages replaces the whole folder: no stale stage-2 maps
        assert attention("-tr", "SSSTrainer_tiny", "-i", image, "--voxel", 7, 15, 14, "--stages", 3, "--out", out) == 0
        assert {p.name for p in out.glob("*.png")} == {"stage3.png", "summary.png"}
        assert not list(out.glob("attention_stage2*")) and list(out.glob("attention_stage3*"))
        (out / "my_notes.txt").write_text("keep")  # a file attention did not write: the folder is not replaced
        capsys.readouterr()
        assert attention("-tr", "SSSTrainer_tiny", "-i", image, "--out", out) == 2
        err = capsys.readouterr().err
        assert "my_notes.txt, which sss-nnunet attention did not write" in err and len(err.strip().splitlines()) == 1
        assert (out / "my_notes.txt").read_text() == "keep" and (out / "stage3.png").exists()


def test_a_key_spike_comes_back_at_its_image_voxel(results, tmp_path, monkeypatch):
    """Image voxel -> preprocessed -> patch -> tokens (planted spike) -> patch -> resampled -> uncropped
    -> image: the map must peak where the spike's voxel is, within one token."""
    from sss_nnunet.attention import model as M
    from sss_nnunet.attention import report
    from sss_nnunet.attention.maps import stage_blocks

    write_model(results, transpose=(2, 0, 1))
    image = tmp_path / "case_0000.nii.gz"
    write_image(image, (16, 30, 44))
    target = (10, 22, 25)  # image voxel Z Y X
    real_load = M.load_model

    def load_and_spike(*args, **kwargs):
        model = real_load(*args, **kwargs)
        case = M.preprocess(model, [str(image)])
        patch = M.extract_patch(model, case, M.image_to_preprocessed(model, case, (7, 15, 14))[0])
        pre, _ = M.image_to_preprocessed(model, case, target)
        in_patch = [p - s + b for p, s, b in zip(pre, patch.start, patch.pad)]
        stage, _, block = stage_blocks(model.network)[0]  # the first Stage-Scan block: stage 2, 4 voxels a token
        pool = block.global_mix.pool
        assert stage == 2 and pool == 2
        token = [c // 4 // pool for c in in_patch]
        grid = [-(-(s // 4) // pool) for s in patch.tensor.shape[2:]]
        flat = int(np.ravel_multi_index(token, grid))

        def spike(_m, _i, out):
            out = out.clone()
            out[:, flat] += 40.0
            return out

        block.global_mix.key.register_forward_hook(spike)
        return model

    monkeypatch.setattr(report.M, "load_model", load_and_spike)
    out = tmp_path / "out"
    assert attention("-tr", "SSSTrainer_tiny", "-i", image, "--voxel", 7, 15, 14, "--stages", 2, "--out", out) == 0
    a = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "attention_stage2b0_global.nii.gz")))
    peak = np.unravel_index(np.argmax(a), a.shape)
    # one pooled token = 8 x 8 x 8 network voxels of (2, 1, 1) mm (transposed) = 16, 8, 8 mm
    mm = np.abs(np.subtract(peak, target)) * np.array([2.5, 1.2, 0.9])
    assert (mm <= 16.5).all(), (peak, target)
    near = a[tuple(slice(max(t - r, 0), t + r + 1) for t, r in zip(target, (7, 8, 10)))].sum()
    assert near > 0.8


def test_2d_configuration_and_label_query(results, tmp_path, capsys):
    write_model(results, configuration="2d")
    image = tmp_path / "case_0000.nii.gz"
    ref = write_image(image)
    out = tmp_path / "out"
    rc = cli.main(["attention", "-d", DATASET, "-tr", "SSSTrainer_tiny", "-c", "2d", "-f", "0", "-device", "cpu",
                   "-i", str(image), "--voxel", "9", "15", "14", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    a = sitk.ReadImage(str(out / "attention_stage2b0_global.nii.gz"))
    assert same_geometry(a, ref)
    arr = sitk.GetArrayFromImage(a)
    assert arr.sum() == pytest.approx(1, abs=1e-3)
    assert arr[9].sum() == pytest.approx(1, abs=1e-3)  # a 2D model sees one slice


def test_label_query_uses_the_models_prediction(results, tmp_path, capsys, monkeypatch):
    """--label L: the label-L voxel of the model's (sliding-window) prediction nearest to its centre of mass."""
    import torch

    from sss_nnunet.attention import model as M
    from sss_nnunet.attention import report

    write_model(results, transpose=(2, 0, 1))
    image = tmp_path / "case_0000.nii.gz"
    write_image(image)
    real_load = M.load_model
    seen = []

    def predict(data):
        seen.append(tuple(data.shape))
        logits = torch.zeros(3, *data.shape[1:])
        logits[1, 4:9, 10:17, 6:13] = 5  # label 1: a box with centre of mass (6, 13, 9)
        logits[1, 4:9, 10:17, 9] = -5  # ... hollow in the middle: the nearest label voxel is chosen
        return logits

    def load(*args, **kwargs):
        model = real_load(*args, **kwargs)
        model.predictor.predict_logits_from_preprocessed_data = predict
        return model

    monkeypatch.setattr(report.M, "load_model", load)
    out = tmp_path / "out"
    assert attention("-tr", "SSSTrainer_tiny", "-i", image, "--label", "1", "--stages", "3", "--out", out) == 0
    query = json.loads((out / "summary.json").read_text())["query"]
    pre = query["preprocessed"]
    assert pre[:2] == [6, 13] and pre[2] in (8, 10)
    assert len(seen) == 1 and seen[0][0] == 1  # the whole preprocessed case, one channel
    assert {p.name for p in out.glob("*.png")} == {"stage3.png", "summary.png"}
    assert attention("-tr", "SSSTrainer_tiny", "-i", image, "--label", "2", "--out", out) == 2
    err = capsys.readouterr().err.strip()
    assert "--label 2: the model predicts no voxel of label 2" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("args, message", [
    (["--voxel", "7", "15", "99"], "--voxel 7 15 99 is outside the image"),
    pytest.param(["--voxel", "7", "15"], "--voxel needs 3 indices", marks=pytest.mark.slow),
    (["--label", "5"], "--label 5: unknown label"),
    pytest.param(["--stages", "1"], "--stages [1]: not a Stage-Scan stage", marks=pytest.mark.slow),
])
def test_bad_queries_are_one_line_errors(results, tmp_path, capsys, args, message):
    write_model(results)
    image = tmp_path / "case_0000.nii.gz"
    write_image(image)
    assert attention("-tr", "SSSTrainer_tiny", "-i", image, *args, "--out", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    if message.startswith("--voxel"):
        assert str(image) in err


def test_model_without_stage_scan_blocks_and_missing_model(results, tmp_path, capsys):
    write_model(results, trainer="nnUNetTrainer")
    image = tmp_path / "case_0000.nii.gz"
    write_image(image)
    assert attention("-tr", "nnUNetTrainer", "-i", image) == 2
    err = capsys.readouterr().err.strip()
    assert "has no Stage-Scan blocks" in err and len(err.splitlines()) == 1
    assert attention("-tr", "SSSTrainer", "-i", image) == 2
    err = capsys.readouterr().err.strip()
    assert "no trained model in" in err and "SSSTrainer__nnUNetPlans__3d_fullres" in err
    assert attention("-tr", "nnUNetTrainer", "-i", tmp_path / "missing_0000.nii.gz") == 2
    assert "no such file" in capsys.readouterr().err


def test_channel_files_must_come_in_channel_order(tmp_path):
    """Two channel files given as -i X_0001 X_0000 would swap the model's inputs silently."""
    from types import SimpleNamespace

    from sss_nnunet.attention.model import input_files
    from sss_nnunet.errors import SSSError

    model = SimpleNamespace(predictor=SimpleNamespace(dataset_json={"channel_names": {"0": "T1", "1": "T2"},
                                                                    "file_ending": ".nii.gz"}))
    a, b = tmp_path / "x_0000.nii.gz", tmp_path / "x_0001.nii.gz"
    for f in (a, b):
        f.write_bytes(b"")
    assert input_files(model, [a, b]) == [str(a), str(b)]
    assert input_files(model, [a]) == [str(a), str(b)]  # the siblings of a single _0000 file
    with pytest.raises(SSSError, match="x_0001.nii.gz: given as channel 0 but named for channel 1"):
        input_files(model, [b, a])
