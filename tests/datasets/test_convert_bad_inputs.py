"""Issue 24 for `sss-nnunet convert`: --overwrite never deletes the raw download or a folder convert did not
write; truncated files, NaN voxels, misaligned labels are refused naming the file; permissions, non-UTF-8
paths and missing nnUNet_* folders end in one line (or a safe result).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dataset_trees import DIRECTION, assert_convert_fails, image_array, label_array, write_nifti

from sss_nnunet.io import OWNER_FILE

NAME = "Dataset801_Synapse8"
BIG = (12, 48, 48)  # (z, y, x): large enough that a cut keeps the header and loses voxels


@pytest.fixture
def synapse(raw_tree):
    return raw_tree("synapse")


def img(raw, n):
    return raw / "Training" / "img" / f"img{n}.nii.gz"


def lab(raw, n):
    return raw / "Training" / "label" / f"label{n}.nii.gz"


def big_case(raw: Path, n: str, **label_geometry) -> None:
    """Case ``n`` with a BIG image and a BIG label, foreground everywhere in the label."""
    write_nifti(img(raw, n), image_array(5, shape=BIG))
    write_nifti(lab(raw, n), label_array(list(range(1, 14)), 5, shape=BIG), **label_geometry)


def fails(convert, env, raw, expected_file, *words, args=()):
    return assert_convert_fails(convert, env, ("synapse", "--raw", raw, *args), expected_file, *words)


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ----------------------------------------------------------------------------- row 2: --raw inside the target
def test_overwrite_with_raw_inside_the_target_keeps_the_download(synapse, nnunet_env, convert):
    target = nnunet_env["nnUNet_raw"] / NAME
    target.mkdir(parents=True)
    inside = target / "RawData"
    shutil.move(synapse, inside)  # the user extracted the download into the dataset folder
    before = listing(inside)
    rc, _, err = convert("synapse", "--raw", inside, "--overwrite")
    assert rc == 2 and err.count("error:") == 1, err
    assert "holds the input" in err and str(inside) in err
    assert listing(inside) == before


def test_overwrite_refuses_a_folder_convert_did_not_write(synapse, nnunet_env, convert):
    target = nnunet_env["nnUNet_raw"] / NAME
    target.mkdir(parents=True)
    (target / "notes.txt").write_text("mine")
    rc, _, err = convert("synapse", "--raw", synapse, "--overwrite")
    assert rc == 2 and "not an output of sss-nnunet convert" in err and "notes.txt" in err, err
    assert (target / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_its_own_dataset_but_not_files_added_to_it(synapse, nnunet_env, convert):
    target = nnunet_env["nnUNet_raw"] / NAME
    assert convert("synapse", "--raw", synapse)[0] == 0
    assert (target / OWNER_FILE).is_file()
    rc, _, err = convert("synapse", "--raw", synapse, "--overwrite")
    assert rc == 0, err
    (target / "my_analysis.ipynb").write_text("keep")
    rc, _, err = convert("synapse", "--raw", synapse, "--overwrite")
    assert rc == 2 and "my_analysis.ipynb" in err, err
    assert (target / "my_analysis.ipynb").read_text() == "keep"


# ----------------------------------------------------------------------------- row 3: truncated files
@pytest.mark.parametrize("which", ["image", "label"])
def test_truncated_file_is_refused_not_zero_filled(which, synapse, nnunet_env, convert):
    big_case(synapse, "0005")
    path = img(synapse, "0005") if which == "image" else lab(synapse, "0005")
    data = path.read_bytes()
    path.write_bytes(data[: 2 * len(data) // 3])  # an interrupted copy: the header is intact
    fails(convert, nnunet_env, synapse, path, "truncated")


def test_corrupt_gzip_data_is_refused(synapse, nnunet_env, convert):
    big_case(synapse, "0005")
    path = lab(synapse, "0005")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    fails(convert, nnunet_env, synapse, path)


# ----------------------------------------------------------------------------- row 5: origin / direction
def test_flipped_label_is_refused(synapse, nnunet_env, convert):
    flipped = np.asarray(DIRECTION).reshape(3, 3) @ np.diag([1.0, 1.0, -1.0])
    big_case(synapse, "0005", direction=tuple(flipped.ravel()))
    fails(convert, nnunet_env, synapse, img(synapse, "0005"), "direction", str(lab(synapse, "0005")))


def test_shifted_label_is_refused(synapse, nnunet_env, convert):
    big_case(synapse, "0005", origin=(-120.5, 95.25, 27.0))  # 10 mm off in z
    fails(convert, nnunet_env, synapse, img(synapse, "0005"), "origin")


def test_rounding_level_origin_difference_is_accepted(synapse, nnunet_env, convert):
    big_case(synapse, "0005", origin=(-120.5 + 1e-5, 95.25, 17.0))
    rc, _, err = convert("synapse", "--raw", synapse)
    assert rc == 0, err


# ----------------------------------------------------------------------------- row 6: NaN / Inf voxels
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_image_voxels_are_refused(value, synapse, nnunet_env, convert):
    array = image_array(3).astype(np.float32)
    array[1, 2, 3] = value
    write_nifti(img(synapse, "0007"), array)
    fails(convert, nnunet_env, synapse, img(synapse, "0007"), "NaN" if np.isnan(value) else "infinite")


# ----------------------------------------------------------------------------- row 7: one line, exit 2
def test_unwritable_nnunet_raw_is_one_line(synapse, nnunet_env, convert, refuse_writes_under, tmp_path):
    """As root a read-only folder is still writable, so the refusal of the operating system is injected."""
    for folder in nnunet_env.values():
        folder.mkdir()
    refuse_writes_under(tmp_path)
    rc, _, err = convert("synapse", "--raw", synapse)
    assert rc == 2 and err.count("error:") == 1 and "Permission denied" in err, err
    assert str(nnunet_env["nnUNet_preprocessed"]) in err or str(nnunet_env["nnUNet_raw"]) in err, err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_nnunet_raw(synapse, nnunet_env, convert):
    nnunet_env["nnUNet_raw"].mkdir()
    nnunet_env["nnUNet_raw"].chmod(0o555)
    try:
        rc, _, err = convert("synapse", "--raw", synapse)
        assert rc == 2 and err.count("error:") == 1 and "Permission denied" in err, err
    finally:
        nnunet_env["nnUNet_raw"].chmod(0o755)


def test_nnunet_raw_naming_a_file(synapse, nnunet_env, convert):
    nnunet_env["nnUNet_raw"].write_text("oops")
    rc, _, err = convert("synapse", "--raw", synapse)
    assert rc == 2 and err.count("error:") == 1 and "not a folder" in err, err


def test_non_utf8_raw_path_converts(synapse, nnunet_env, tmp_path):
    """SimpleITK aborts the process (exit 134) on a name that is not UTF-8: the files are decoded by Python."""
    odd = os.fsdecode(bytes(tmp_path) + b"/t\xe9l\xe9chargement")
    shutil.move(synapse.parent, odd)
    cli = Path(sys.executable).parent / "sss-nnunet"
    res = subprocess.run([str(cli), "convert", "synapse", "--raw", os.fsencode(odd) + b"/RawData", "--workers", "1"],
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert len(list((nnunet_env["nnUNet_raw"] / NAME / "labelsTr").glob("*.nii.gz"))) == 18


# ----------------------------------------------------------------------------- row 11: nnUNet_* folders
def test_missing_nnunet_raw_is_created_with_a_notice(synapse, nnunet_env, convert):
    assert not nnunet_env["nnUNet_raw"].exists()
    rc, _, err = convert("synapse", "--raw", synapse)
    assert rc == 0, err
    assert f"created nnUNet_raw={nnunet_env['nnUNet_raw']}" in err
    assert f"created nnUNet_preprocessed={nnunet_env['nnUNet_preprocessed']}" in err


def test_nnunet_raw_with_a_missing_parent_is_an_error(synapse, nnunet_env, convert, monkeypatch, tmp_path):
    typo = tmp_path / "dtaa" / "nnUNet_raw"
    monkeypatch.setenv("nnUNet_raw", str(typo))
    rc, _, err = convert("synapse", "--raw", synapse)
    assert rc == 2 and err.count("error:") == 1 and "does not exist" in err and "typo" in err, err
    assert not typo.parent.exists()


def test_non_utf8_nnunet_raw_is_one_line(synapse, nnunet_env, tmp_path):
    """SimpleITK would abort writing the labels there: refused first, in one line."""
    env = dict(os.environ)
    env["nnUNet_raw"] = os.fsdecode(bytes(tmp_path) + b"/r\xe9sultats")
    cli = Path(sys.executable).parent / "sss-nnunet"
    res = subprocess.run([str(cli), "convert", "synapse", "--raw", str(synapse), "--workers", "1"], env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 2 and res.stderr.count("error:") == 1 and "not valid UTF-8" in res.stderr, res.stderr
