"""Bad input, refusal to overwrite, --allow-missing, --id, atomicity (on the Synapse tree).

Every failure must give one clear error naming the file and leave nothing behind in
nnUNet_raw or nnUNet_preprocessed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from dataset_trees import (
    SPACING,
    assert_convert_fails,
    assert_nothing_written,
    identifiers,
    image_array,
    label_array,
    load_json,
    read,
    write_nifti,
)

from sss_nnunet.datasets import writer
from sss_nnunet.datasets.specs import paper_splits

SPLIT = paper_splits()["synapse"]


@pytest.fixture
def synapse(raw_tree):
    return raw_tree("synapse")


def img(raw, n):
    return raw / "Training" / "img" / f"img{n}.nii.gz"


def lab(raw, n):
    return raw / "Training" / "label" / f"label{n}.nii.gz"


def fails(convert, env, raw, expected_file, *words, args=()):
    return assert_convert_fails(convert, env, ("synapse", "--raw", raw, *args), expected_file, *words)


def test_missing_image_file(synapse, nnunet_env, convert):
    img(synapse, "0005").unlink()
    fails(convert, nnunet_env, synapse, img(synapse, "0005"), "not found", "--allow-missing")


def test_missing_label_file(synapse, nnunet_env, convert):
    lab(synapse, "0022").unlink()
    fails(convert, nnunet_env, synapse, lab(synapse, "0022"), "not found")


def test_shape_mismatch(synapse, nnunet_env, convert):
    write_nifti(lab(synapse, "0026"), label_array(list(range(14)), 0, shape=(3, 4, 5)))
    fails(convert, nnunet_env, synapse, lab(synapse, "0026"), "size")


def test_spacing_mismatch(synapse, nnunet_env, convert):
    spacing = (SPACING[0], SPACING[1], SPACING[2] * 1.01)
    write_nifti(lab(synapse, "0031"), label_array(list(range(14)), 0), spacing=spacing)
    fails(convert, nnunet_env, synapse, lab(synapse, "0031"), "spacing")


def test_spacing_within_tolerance_accepted(synapse, nnunet_env, convert):
    spacing = (SPACING[0], SPACING[1], SPACING[2] * (1 + 2e-5))
    write_nifti(lab(synapse, "0031"), label_array(list(range(14)), 0), spacing=spacing)
    rc, _, err = convert("synapse", "--raw", synapse)
    assert rc == 0, err


def test_label_values_outside_expected_set(synapse, nnunet_env, convert):
    write_nifti(lab(synapse, "0009"), label_array([0, 1, 14], 0))
    fails(convert, nnunet_env, synapse, lab(synapse, "0009"), "[14]", "outside the expected set")


def test_non_integer_label_values(synapse, nnunet_env, convert):
    write_nifti(lab(synapse, "0009"), label_array([0, 1, 2], 0).astype(np.float32) + 0.5)
    fails(convert, nnunet_env, synapse, lab(synapse, "0009"), "not all integers")


def test_unreadable_nifti(synapse, nnunet_env, convert):
    img(synapse, "0033").write_bytes(b"this is not a NIfTI file")
    fails(convert, nnunet_env, synapse, img(synapse, "0033"), "unreadable NIfTI")


def test_truncated_nifti(synapse, nnunet_env, convert):
    data = img(synapse, "0033").read_bytes()
    img(synapse, "0033").write_bytes(data[: len(data) // 2])
    fails(convert, nnunet_env, synapse, img(synapse, "0033"), "truncated file")


def test_4d_file_where_3d_expected(synapse, nnunet_env, convert):
    write_nifti(img(synapse, "0034"), np.stack([image_array(0)] * 2))
    fails(convert, nnunet_env, synapse, img(synapse, "0034"), "expected a 3D image")


def test_case_of_paper_split_absent(synapse, nnunet_env, convert):
    """A test case the paper names (img0001) is not in the download."""
    img(synapse, "0001").unlink()
    lab(synapse, "0001").unlink()
    fails(convert, nnunet_env, synapse, img(synapse, "0001"), "img0001", "--allow-missing")


def test_allow_missing_converts_the_rest(synapse, nnunet_env, convert):
    for n in ("0001", "0005"):  # a test case and a training case
        img(synapse, n).unlink()
        lab(synapse, n).unlink()
    rc, out, err = convert("synapse", "--raw", synapse, "--allow-missing")
    assert rc == 0, err
    assert "2 expected case(s) not converted" in out and "img0001" in out and "img0005" in out
    folder = nnunet_env["nnUNet_raw"] / "Dataset801_Synapse8"
    assert identifiers(folder / "imagesTr", True) == sorted(set(SPLIT["train_18"]) - {"img0005"})
    assert identifiers(folder / "imagesTs", True) == sorted(set(SPLIT["test_12"]) - {"img0001"})
    splits = load_json(nnunet_env["nnUNet_preprocessed"] / "Dataset801_Synapse8" / "splits_final.json")
    for fold in splits:
        assert sorted(fold["train"] + fold["val"]) == sorted(set(SPLIT["train_18"]) - {"img0005"})
    assert load_json(folder / "dataset.json")["numTraining"] == 17


def test_existing_dataset_refused_unless_overwrite(synapse, nnunet_env, convert):
    assert convert("synapse", "--raw", synapse)[0] == 0
    folder = nnunet_env["nnUNet_raw"] / "Dataset801_Synapse8"
    snapshot = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    write_nifti(lab(synapse, "0005"), np.zeros((3, 4, 4), np.uint8))
    rc, _, err = convert("synapse", "--raw", synapse)
    assert rc == 2 and str(folder) in err and "--overwrite" in err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == snapshot  # untouched
    assert read(folder / "labelsTr" / "img0005.nii.gz")[0].any()

    rc, _, err = convert("synapse", "--raw", synapse, "--overwrite")
    assert rc == 0, err
    assert not read(folder / "labelsTr" / "img0005.nii.gz")[0].any()  # replaced
    assert sorted(p.name for p in nnunet_env["nnUNet_raw"].iterdir()) == ["Dataset801_Synapse8"]


def test_failed_overwrite_keeps_old_dataset(synapse, nnunet_env, convert):
    assert convert("synapse", "--raw", synapse)[0] == 0
    folder = nnunet_env["nnUNet_raw"] / "Dataset801_Synapse8"
    snapshot = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    split_file = nnunet_env["nnUNet_preprocessed"] / "Dataset801_Synapse8" / "splits_final.json"
    split_before = split_file.read_bytes()
    img(synapse, "0040").write_bytes(b"garbage")
    rc, _, err = convert("synapse", "--raw", synapse, "--overwrite", "-np", "2")
    assert rc == 2 and str(img(synapse, "0040")) in err
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == snapshot
    assert split_file.read_bytes() == split_before
    assert sorted(p.name for p in nnunet_env["nnUNet_raw"].iterdir()) == ["Dataset801_Synapse8"]


def test_split_lands_only_with_the_dataset(synapse, nnunet_env, convert, monkeypatch):
    """--overwrite with a different split (one training case fewer) fails when the new dataset folder is
    renamed into place: the old dataset AND its old split stay, no new split beside the old dataset."""
    import os

    assert convert("synapse", "--raw", synapse)[0] == 0
    folder = nnunet_env["nnUNet_raw"] / "Dataset801_Synapse8"
    split_file = nnunet_env["nnUNet_preprocessed"] / "Dataset801_Synapse8" / "splits_final.json"
    snapshot = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    split_before = split_file.read_bytes()
    img(synapse, "0005").unlink()
    lab(synapse, "0005").unlink()
    real_replace = os.replace

    def dataset_rename_fails(src, dst):
        if str(dst) == str(folder) and ".partial" in str(src):
            raise OSError("injected: the dataset folder could not be renamed into place")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dataset_rename_fails)
    rc, _, err = convert("synapse", "--raw", synapse, "--overwrite", "--allow-missing")
    assert rc == 2 and err.count("error:") == 1 and "injected" in err  # one line, no traceback (issue 24)
    assert split_file.read_bytes() == split_before
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == snapshot
    assert [p.name for p in split_file.parent.iterdir()] == ["splits_final.json"]
    assert [p.name for p in split_file.parent.parent.iterdir()] == [split_file.parent.name]  # no staged copy left
    assert sorted(p.name for p in nnunet_env["nnUNet_raw"].iterdir()) == ["Dataset801_Synapse8"]

    monkeypatch.setattr(os, "replace", real_replace)
    rc, _, err = convert("synapse", "--raw", synapse, "--overwrite", "--allow-missing")
    assert rc == 0, err
    new_split = load_json(split_file)
    assert new_split == load_json(folder / "splits_final.json") != json.loads(split_before)
    assert "img0005" not in {n for fold in new_split for n in fold["train"] + fold["val"]}


def test_interrupted_run_leaves_nothing(synapse, nnunet_env, convert, monkeypatch):
    calls = []
    real = writer.convert_case

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(writer, "convert_case", interrupted)
    with pytest.raises(KeyboardInterrupt):
        convert("synapse", "--raw", synapse)
    assert_nothing_written(nnunet_env)


def test_unset_environment_variable(synapse, nnunet_env, convert, monkeypatch):
    monkeypatch.delenv("nnUNet_preprocessed")
    rc, _, err = convert("synapse", "--raw", synapse)
    assert rc == 2 and "nnUNet_preprocessed is not set" in err
    assert_nothing_written(nnunet_env)


def test_wrong_layout(tmp_path, nnunet_env, convert):
    (tmp_path / "somewhere").mkdir()
    rc, _, err = convert("synapse", "--raw", tmp_path / "somewhere")
    assert rc == 2 and "Training/img" in err
    rc, _, err = convert("acdc", "--raw", tmp_path / "nowhere")
    assert rc == 2 and "not found" in err
    assert_nothing_written(nnunet_env)


def test_custom_id_and_id_clash(synapse, nnunet_env, convert):
    rc, _, err = convert("synapse", "--raw", synapse, "-d", "901")
    assert rc == 0, err
    assert (nnunet_env["nnUNet_raw"] / "Dataset901_Synapse8" / "dataset.json").exists()
    assert (nnunet_env["nnUNet_preprocessed"] / "Dataset901_Synapse8" / "splits_final.json").exists()
    rc, _, err = convert("synapse", "--btcv13", "--raw", synapse, "--id", "901")  # the old spelling still works
    assert rc == 2 and "Dataset901_Synapse8" in err and "-d ID" in err
    assert not (nnunet_env["nnUNet_raw"] / "Dataset901_BTCV13").exists()


def test_different_existing_split_refused(synapse, nnunet_env, convert):
    split_file = nnunet_env["nnUNet_preprocessed"] / "Dataset801_Synapse8" / "splits_final.json"
    split_file.parent.mkdir(parents=True)
    split_file.write_text('[{"train": ["img0005"], "val": ["img0006"]}]')
    rc, _, err = convert("synapse", "--raw", synapse)
    assert rc == 2 and str(split_file) in err
    assert not (nnunet_env["nnUNet_raw"] / "Dataset801_Synapse8").exists()
    rc, _, err = convert("synapse", "--raw", synapse, "--overwrite")
    assert rc == 0, err
    assert len(load_json(split_file)) == 5


def test_output_permissions_follow_umask(synapse, nnunet_env, convert):
    import os
    umask = os.umask(0)
    os.umask(umask)
    assert convert("synapse", "--raw", synapse)[0] == 0
    folder = nnunet_env["nnUNet_raw"] / "Dataset801_Synapse8"
    split = nnunet_env["nnUNet_preprocessed"] / "Dataset801_Synapse8" / "splits_final.json"
    assert folder.stat().st_mode & 0o777 == 0o777 & ~umask
    for f in (folder / "dataset.json", folder / "splits_final.json", split):
        assert f.stat().st_mode & 0o777 == 0o666 & ~umask
