"""Dice and HD95 on binary masks, equal to ``medpy.metric.binary.dc`` and ``hd95``.

Masks are numpy arrays of any dimension, in practice (D, H, W) for 3D and (H, W)
for 2D. ``spacing`` is one value per axis in the same (numpy) order, in
millimetres; without it distances are in voxel units.

HD95 follows medpy exactly: the surface of a mask is the mask minus its binary
erosion with the connectivity-1 structuring element (voxels on the image border
count as surface, since erosion treats the outside as background); the distance
of every surface voxel of one mask to the nearest surface voxel of the other is
taken in both directions, pooled, and the 95th percentile (linear interpolation)
returned.

Speed: everything is computed on the bounding box of the union of both masks.
This changes nothing: outside the box both masks are background, which is also
what the erosion assumes beyond the array edge, so the surfaces are the same;
and the exact Euclidean distance transform of a crop that contains every
surface voxel of both masks gives the same nearest-surface distances (no margin
is needed).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np
from scipy import ndimage

Box = tuple[slice, ...]


def bounding_box(mask: np.ndarray) -> Box | None:
    """Smallest box (one slice per axis) holding all non-zero voxels; ``None`` if empty."""
    return ndimage.find_objects(_as_bool(mask).view(np.uint8), max_label=1)[0]


def union_box(boxes: Sequence[Box | None]) -> Box | None:
    """Smallest box covering all given boxes (``None`` entries are empty boxes)."""
    boxes = [b for b in boxes if b is not None]
    if not boxes:
        return None
    return tuple(
        slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(len(boxes[0]))
    )


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient 2|P∩G| / (|P|+|G|) of two binary masks, as medpy ``dc``.

    Both empty: 1.0 (the rule of the paper scripts and medpy's intent; medpy 0.5.2
    actually returns NaN there, dividing numpy zeros).
    """
    pred, gt = _as_bool(pred), _as_bool(gt)
    total = np.count_nonzero(pred) + np.count_nonzero(gt)
    if total == 0:
        return 1.0
    return float(2.0 * np.count_nonzero(pred & gt) / total)


@cache
def _cross(ndim: int) -> np.ndarray:
    return ndimage.generate_binary_structure(ndim, 1)


def surface(mask: np.ndarray) -> np.ndarray:
    """Boolean surface of a binary mask: voxels removed by one erosion (connectivity 1, outside = 0)."""
    mask = _as_bool(mask)
    return mask ^ ndimage.binary_erosion(mask, structure=_cross(mask.ndim), iterations=1)


def _sampling(spacing: Sequence[float] | float | None, ndim: int) -> np.ndarray | None:
    if spacing is None:
        return None
    s = np.broadcast_to(np.asarray(spacing, dtype=np.float64), (ndim,)).copy()
    if s.shape != (ndim,) or not np.all(s > 0):
        raise ValueError(f"spacing must be {ndim} positive values, got {spacing!r}")
    return s


def surface_distances(
    pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Distances pred-surface -> nearest gt-surface voxel and gt-surface -> nearest pred-surface voxel.

    Units: millimetres with ``spacing`` (numpy axis order), voxels without.
    Both masks must be non-empty (``ValueError`` otherwise).
    """
    pred, gt = _as_bool(pred), _as_bool(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"mask shapes differ: {pred.shape} vs {gt.shape}")
    sampling = _sampling(spacing, pred.ndim)
    pred_box, gt_box = bounding_box(pred), bounding_box(gt)
    if pred_box is None or gt_box is None:
        raise ValueError("surface distances need two non-empty masks")
    box = union_box([pred_box, gt_box])
    ps, gs = surface(pred[box]), surface(gt[box])
    to_gt = ndimage.distance_transform_edt(~gs, sampling=sampling)[ps]
    to_pred = ndimage.distance_transform_edt(~ps, sampling=sampling)[gs]
    return to_gt, to_pred


def hd95(pred: np.ndarray, gt: np.ndarray, spacing: Sequence[float] | float | None = None) -> float:
    """95th percentile of the pooled surface distances of both directions (medpy ``hd95``).

    Units: millimetres with ``spacing`` (one value per axis, numpy order), voxels without.
    Raises ``ValueError`` if either mask is empty; the protocols decide what an empty mask scores.
    """
    to_gt, to_pred = surface_distances(pred, gt, spacing)
    return float(np.percentile(np.concatenate((to_gt, to_pred)), 95))


def _as_bool(mask: np.ndarray) -> np.ndarray:
    mask = np.atleast_1d(np.asarray(mask))
    return mask if mask.dtype == bool else mask.astype(bool)
