"""Fixtures of the evaluation tests: small label maps written as nnU-Net-style files.

Helpers are handed out as fixtures (``helpers``) so that the tests work with any
pytest import mode.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import SimpleITK as sitk


def write_label_map(path: Path, array: np.ndarray, spacing=(1.0, 1.0, 1.0), origin=None) -> Path:
    """Write ``array`` (D, H, W) with ``spacing`` in numpy order (mm) as a label map."""
    image = sitk.GetImageFromArray(array.astype(np.uint8))
    image.SetSpacing(tuple(float(s) for s in reversed(spacing[-array.ndim :])))
    if origin is not None:
        image.SetOrigin(tuple(float(o) for o in origin))
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def random_blobs(rng: np.random.Generator, shape, n_labels: int, fill: float = 0.15) -> np.ndarray:
    """Label map (D, H, W) with one box-ish blob per label (some labels may be overwritten)."""
    out = np.zeros(shape, np.uint8)
    for label in range(1, n_labels + 1):
        lo = [int(rng.integers(0, max(1, s - 3))) for s in shape]
        size = [int(rng.integers(2, max(3, int(s * fill) + 3))) for s in shape]
        out[tuple(slice(a, a + b) for a, b in zip(lo, size))] = label
    return out


def perturb(rng: np.random.Generator, labels: np.ndarray, n_labels: int, p: float = 0.03) -> np.ndarray:
    """Copy of ``labels`` with a fraction ``p`` of voxels set to random labels."""
    out = labels.copy()
    flip = rng.random(labels.shape) < p
    out[flip] = rng.integers(0, n_labels + 1, int(flip.sum()))
    return out


@pytest.fixture
def helpers() -> SimpleNamespace:
    """``write_label_map``, ``random_blobs``, ``perturb``."""
    return SimpleNamespace(write_label_map=write_label_map, random_blobs=random_blobs, perturb=perturb)


@pytest.fixture
def make_folders(tmp_path: Path) -> Callable:
    """make_folders(n_cases, n_labels, shape, spacing) -> (pred_dir, gt_dir, {case: (pred, gt)})."""

    def make(n_cases=3, n_labels=8, shape=(12, 24, 24), spacing=(2.5, 0.8, 0.8), seed=0, prefix="case"):
        rng = np.random.default_rng(seed)
        pred_dir, gt_dir = tmp_path / "pred", tmp_path / "gt"
        arrays = {}
        for i in range(n_cases):
            case = f"{prefix}_{i:03d}"
            gt = random_blobs(rng, shape, n_labels)
            pred = perturb(rng, gt, n_labels)
            write_label_map(gt_dir / f"{case}.nii.gz", gt, spacing)
            write_label_map(pred_dir / f"{case}.nii.gz", pred, spacing)
            arrays[case] = (pred, gt)
        return pred_dir, gt_dir, arrays

    return make
