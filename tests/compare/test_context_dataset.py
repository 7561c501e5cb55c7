"""The long-range-context synthetic dataset: the class is not in the blob, it is in a far marker,
and nnU-Net's planned 3d_fullres patch sees both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from sss_nnunet.datasets import synthetic
from sss_nnunet.datasets.synthetic_context import LABELS, MIN_MARKER_DISTANCE_VOX, SHAPE, make_context_case

SSS = str(Path(sys.executable).parent / "sss-nnunet")


def _marker_centre(case) -> np.ndarray:
    """Centre (voxels) of the bright unlabelled marker: the largest component above 140 outside the labels."""
    bright = (case.image > 140) & ~ndimage.binary_dilation(case.label > 0, iterations=2)
    comps, n = ndimage.label(bright, structure=np.ones((3, 3, 3)))
    sizes = ndimage.sum(bright, comps, range(1, n + 1))
    return np.array(ndimage.center_of_mass(comps == 1 + int(np.argmax(sizes))))


def test_cases_are_deterministic_and_have_one_class_each():
    a, b = make_context_case(3, 5), make_context_case(3, 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label)
    assert not np.array_equal(a.image, make_context_case(3, 5, "Ts").image)
    classes = []
    for i in range(24):
        c = make_context_case(0, i)
        assert c.image.shape == c.label.shape == SHAPE and c.image.dtype == np.int16
        present = set(np.unique(c.label)) - {0}
        assert len(present) == 1  # both blobs share the class of the case
        _, n_blobs = ndimage.label(c.label > 0)
        assert n_blobs == 2
        classes.append(present.pop())
    assert 6 <= classes.count(LABELS["blob_shell"]) <= 18  # both classes occur, roughly balanced


def test_blobs_look_the_same_in_both_classes_and_the_marker_is_far():
    """Local appearance carries no class information: same intensity and size distributions; the marker
    (which decides the class) is at least MIN_MARKER_DISTANCE_VOX voxels from every blob along W."""
    stats = {1: [], 2: []}
    for i in range(40):
        c = make_context_case(1, i)
        comps, n = ndimage.label(c.label > 0)
        marker = _marker_centre(c)
        for k in range(1, n + 1):
            blob = comps == k
            cls = int(c.label[blob][0])
            stats[cls].append((c.image[blob].mean(), blob.sum()))
            centre = np.array(ndimage.center_of_mass(blob))
            assert abs(centre[2] - marker[2]) >= MIN_MARKER_DISTANCE_VOX - 2
    (i1, s1), (i2, s2) = (np.array(stats[k]).T for k in (1, 2))
    assert abs(i1.mean() - i2.mean()) < 0.25 * np.sqrt(i1.var() + i2.var()) + 3
    assert abs(s1.mean() - s2.mean()) < 0.35 * np.sqrt(s1.var() + s2.var())


def test_marker_shell_or_solid_decides_the_class():
    for i in range(12):
        c = make_context_case(2, i)
        centre = np.round(_marker_centre(c)).astype(int)
        core = c.image[tuple(slice(x - 1, x + 2) for x in centre)].astype(float).mean()
        hollow = core < 90  # the inside of a shell is background (about 0), a solid ball about 170
        assert (LABELS["blob_shell"] if hollow else LABELS["blob_solid"]) in np.unique(c.label)


def test_written_dataset_layout(tmp_path):
    folder = synthetic.write_synthetic_dataset(tmp_path, 991, 3, 2, seed=0, kind="context", progress=False)
    assert folder.name == "Dataset991_SSSContext"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == LABELS and meta["channel_names"] == {"0": "MR"} and meta["numTraining"] == 3
    assert len(list((folder / "imagesTs").glob("*_0000.nii.gz"))) == 2
    assert len(list((folder / "labelsTs").glob("*.nii.gz"))) == 2


@pytest.mark.slow
@pytest.mark.e2e
def test_convert_context_and_the_planned_patch_is_the_whole_volume(tmp_path):
    """``sss-nnunet convert context`` then the stock planner: the 3d_fullres patch covers the whole
    volume, so the marker is in every patch that holds a blob."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("nnUNet_")}
    env.update(nnUNet_raw=str(tmp_path / "raw"), nnUNet_preprocessed=str(tmp_path / "pre"), PYTHONWARNINGS="ignore")
    (tmp_path / "raw").mkdir()
    res = subprocess.run([SSS, "convert", "context", "--train-cases", "6", "--test-cases", "1"], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    plan = subprocess.run([str(Path(sys.executable).parent / "nnUNetv2_plan_and_preprocess"), "-d", "991", "-c",
                           "3d_fullres", "--no_pp", "-npfp", "2"], env=env, capture_output=True, text=True,
                          timeout=600)
    assert plan.returncode == 0, plan.stdout[-2000:] + plan.stderr[-2000:]
    plans = json.loads((tmp_path / "pre" / "Dataset991_SSSContext" / "nnUNetPlans.json").read_text())
    assert plans["configurations"]["3d_fullres"]["patch_size"] == list(SHAPE)
    res = subprocess.run([SSS, "convert", "context", "--raw", str(tmp_path)], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "takes no --raw" in res.stderr


# ----------------------------------------------------------------------------- the 2D variant
def test_context2d_cases_have_one_class_decided_by_a_far_marker():
    from sss_nnunet.datasets.synthetic_context import MIN_MARKER_DISTANCE_2D, SHAPE_2D, make_context2d_case

    a, b = make_context2d_case(3, 5), make_context2d_case(3, 5)
    assert np.array_equal(a.image, b.image) and not np.array_equal(a.image, make_context2d_case(3, 5, "Ts").image)
    classes, sides = [], set()
    for i in range(16):
        c = make_context2d_case(0, i)
        assert c.image.shape == c.label.shape == (1, *SHAPE_2D) and c.image.dtype == np.int16
        present = set(np.unique(c.label)) - {0}
        assert len(present) == 1 and ndimage.label(c.label[0] > 0)[1] == 2
        marker = _marker_centre(c)
        comps, n = ndimage.label(c.label > 0)
        for k in range(1, n + 1):
            assert abs(ndimage.center_of_mass(comps == k)[2] - marker[2]) >= MIN_MARKER_DISTANCE_2D - 4
        centre = np.round(marker).astype(int)
        core = c.image[0, centre[1] - 2:centre[1] + 3, centre[2] - 2:centre[2] + 3].astype(float).mean()
        cls = LABELS["blob_shell"] if core < 90 else LABELS["blob_solid"]  # a shell's inside is background
        assert present == {cls}
        classes.append(cls)
        sides.add(marker[2] < SHAPE_2D[1] / 2)
    assert len(set(classes)) == 2 and sides == {True, False}  # both classes, markers at both ends of W


def test_context2d_dataset_layout(tmp_path):
    folder = synthetic.write_synthetic_dataset(tmp_path, 993, 3, 2, seed=0, kind="context2d", progress=False)
    assert folder.name == "Dataset993_SSSContext2D"
    meta = json.loads((folder / "dataset.json").read_text())
    assert meta["labels"] == LABELS and len(list((folder / "labelsTs").glob("*.nii.gz"))) == 2
