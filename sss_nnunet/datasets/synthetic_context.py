"""Long-range-context synthetic dataset: the class of a structure is written far away from it.

Each case (D, H, W) = ``SHAPE`` = 24 x 24 x 64 voxels of 1.5 mm, an MR-like volume (arbitrary
units, channel ``MR``, z-scored by nnU-Net) with

- two **blobs** (the labelled structures) at one end of the long W axis: tilted ellipsoids of
  semi-axes 2.5-4 voxels, intensity 100 +- 8 (per case), smooth surface;
- one **marker** (not labelled) at the other end, 30-40 voxels (45-60 mm) away from every blob
  centre along W: a ball of radius 4-5 voxels, intensity 170 +- 8, either *solid* or a *hollow
  shell* (wall 1.5 voxels, the inside at background level).

Labels: both blobs are ``1 blob_shell`` when the marker is a hollow shell and ``2 blob_solid``
when it is solid (each case draws the marker type at random, 50/50).

Why local appearance is ambiguous: blobs of the two classes are drawn from the same
distribution (size, shape, tilt, intensity, texture, noise, position), so any neighbourhood that
does not reach the marker carries no information about the class; the best a model that sees
less than ~45 mm around a blob can do is segment "blob" and guess the class (expected Dice about
0.5 per class). Only the marker, 45-60 mm away, decides. The rule is invariant to nnU-Net's
mirroring and rotation augmentation (a shell stays a shell), so augmentation does not corrupt it.

Solvable from the planned patch: the volumes are small enough that nnU-Net's 3d_fullres plan
uses the whole volume as the patch (24 x 24 x 64 here; ``tests/datasets`` checks it), so the
marker is inside every training patch and every sliding-window prediction.

Background: smooth texture (sd 10) plus Gaussian noise (sd 15-22), a light blur.
Arrays are (D, H, W) = (z, y, x) voxels; spacing in mm, (z, y, x) order. Deterministic in
(seed, subset, index) like the CT demo set.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

DATASET_NAME = "SSSContext"
SHAPE = (24, 24, 64)  # (D, H, W) voxels
SPACING = (1.5, 1.5, 1.5)  # (z, y, x) mm
LABELS = {"background": 0, "blob_shell": 1, "blob_solid": 2}
CHANNEL = "MR"
MIN_MARKER_DISTANCE_VOX = 30  # blob centre to marker centre along W


def make_context_case(seed: int, index: int, subset: str = "Tr", shape: tuple[int, int, int] = SHAPE):
    """One case: a ``SyntheticCase`` with image int16 (D, H, W), label uint8 (D, H, W), spacing (z, y, x) mm."""
    from sss_nnunet.datasets.synthetic import SyntheticCase, _blob, _smooth_field

    rng = np.random.default_rng([seed, {"Tr": 0, "Ts": 1}[subset], index, 7])
    D, H, W = shape
    coords = tuple(np.arange(n, dtype=float).reshape([-1 if a == i else 1 for a in range(3)])
                   for i, n in enumerate(shape))  # voxel units
    texture = 10.0 * _smooth_field(rng, shape, (2.0, 2.0, 2.0))
    image = texture.copy()
    label = np.zeros(shape, np.uint8)

    hollow = bool(rng.integers(2))
    marker_left = bool(rng.integers(2))  # which end of W holds the marker
    r_marker = rng.uniform(4.0, 5.0)
    mx = rng.uniform(r_marker + 1, r_marker + 4)
    marker = np.array([rng.uniform(r_marker + 1, D - r_marker - 2), rng.uniform(r_marker + 1, H - r_marker - 2), mx])
    dist = np.sqrt(sum((c - m) ** 2 for c, m in zip(coords, marker)))
    marker_value = 170.0 + rng.uniform(-8, 8)
    ball = dist < r_marker
    image[ball] = marker_value
    if hollow:
        inside = dist < r_marker - 1.5
        image[inside] = texture[inside]

    blob_value = 100.0 + rng.uniform(-8, 8)
    cls = LABELS["blob_shell"] if hollow else LABELS["blob_solid"]
    centres: list[np.ndarray] = []
    for _ in range(2):
        semi = rng.uniform(2.5, 4.0, 3)
        for _attempt in range(50):  # two blobs that do not touch
            c = np.array([rng.uniform(4, D - 5), rng.uniform(4, H - 5),
                          rng.uniform(mx + MIN_MARKER_DISTANCE_VOX, min(W - 5, mx + MIN_MARKER_DISTANCE_VOX + 10) + 1)])
            if all(np.linalg.norm(c - o) > 9 for o in centres):
                break
        centres.append(c)
        surface = _smooth_field(rng, shape, (3.0, 3.0, 3.0))
        mask = _blob(coords, c, semi, rng.uniform(-0.6, 0.6), surface, 0.1)
        image[mask] = blob_value + 4.0 * rng.standard_normal(int(mask.sum()))
        label[mask] = cls

    if not marker_left:  # mirror W: the marker at the far end instead
        image, label = image[:, :, ::-1], label[:, :, ::-1]
    image = ndimage.gaussian_filter(image, 0.5) + rng.normal(0.0, rng.uniform(15.0, 22.0), shape)
    return SyntheticCase(np.rint(image).astype(np.int16), np.ascontiguousarray(label), SPACING)


# ----------------------------------------------------------------------------- 2D variant
SHAPE_2D = (256, 256)  # (H, W) pixels of 1 mm
MIN_MARKER_DISTANCE_2D = 140  # blob centre to marker centre along W, pixels


def make_context2d_case(seed: int, index: int, subset: str = "Tr", shape: tuple[int, int] = SHAPE_2D):
    """2D long-range context: the same rule as :func:`make_context_case` on an (H, W) image.

    A marker (radius 12-16 px, solid or a hollow shell with a 4 px wall) near one end of W, two
    blobs (semi-axes 8-14 px, tilted, rough surface) 140-200 px away from it along W; both blobs
    are ``blob_shell`` (1) or ``blob_solid`` (2) by the marker. The planned 2d configuration sees
    the whole 256 x 256 image, so its deeper stages (64 x 64 down to 4 x 4 pixels) carry the rule:
    the set where an encoder stage's map is split into several scan windows.
    Returns a ``SyntheticCase`` with (1, H, W) arrays (one slice) and spacing (1, 1, 1) mm.
    """
    from sss_nnunet.datasets.synthetic import SyntheticCase, _smooth_field

    rng = np.random.default_rng([seed, {"Tr": 0, "Ts": 1}[subset], index, 11])
    H, W = shape
    y, x = np.arange(H, dtype=float)[:, None], np.arange(W, dtype=float)[None, :]
    texture = 10.0 * _smooth_field(rng, shape, (4.0, 4.0))
    image = texture.copy()
    label = np.zeros(shape, np.uint8)

    hollow = bool(rng.integers(2))
    r_marker = rng.uniform(12.0, 16.0)
    my, mx = rng.uniform(r_marker + 4, H - r_marker - 4), rng.uniform(r_marker + 4, r_marker + 20)
    dist = np.hypot(y - my, x - mx)
    image[dist < r_marker] = 170.0 + rng.uniform(-8, 8)
    if hollow:
        inside = dist < r_marker - 4.0
        image[inside] = texture[inside]

    blob_value = 100.0 + rng.uniform(-8, 8)
    cls = LABELS["blob_shell"] if hollow else LABELS["blob_solid"]
    centres: list[np.ndarray] = []
    for _ in range(2):
        semi = rng.uniform(8.0, 14.0, 2)
        for _attempt in range(50):  # two blobs that do not touch
            c = np.array([rng.uniform(18, H - 18),
                          rng.uniform(mx + MIN_MARKER_DISTANCE_2D, min(W - 18, mx + MIN_MARKER_DISTANCE_2D + 60))])
            if all(np.linalg.norm(c - o) > 30 for o in centres):
                break
        centres.append(c)
        tilt = rng.uniform(-0.8, 0.8)
        dy, dx = y - c[0], x - c[1]
        yr, xr = np.cos(tilt) * dy + np.sin(tilt) * dx, -np.sin(tilt) * dy + np.cos(tilt) * dx
        mask = np.hypot(yr / semi[0], xr / semi[1]) < 1.0 + 0.1 * _smooth_field(rng, shape, (6.0, 6.0))
        image[mask] = blob_value + 4.0 * rng.standard_normal(int(mask.sum()))
        label[mask] = cls

    if rng.integers(2):  # the marker at the other end of W
        image, label = image[:, ::-1], label[:, ::-1]
    image = ndimage.gaussian_filter(image, 0.7) + rng.normal(0.0, rng.uniform(15.0, 22.0), shape)
    return SyntheticCase(np.rint(image).astype(np.int16)[None], np.ascontiguousarray(label)[None], (1.0, 1.0, 1.0))
