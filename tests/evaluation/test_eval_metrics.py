"""Dice and HD95 against medpy (to 1e-6): random and structured masks, 2D/3D, spacing, empty masks."""

from __future__ import annotations

import numpy as np
import pytest
from medpy.metric import binary

from sss_nnunet.datasets.specs import ACDC, BRATS_MSD, SYNAPSE8
from sss_nnunet.evaluation.evaluate import score_label_maps
from sss_nnunet.evaluation.metrics import bounding_box, dice, hd95, surface, union_box
from sss_nnunet.evaluation.protocols import PAPER, STRICT, image_diagonal_mm
from sss_nnunet.evaluation.tasks import task_from_spec

TOL = 1e-6


def assert_like_medpy(pred: np.ndarray, gt: np.ndarray, spacing=None) -> None:
    assert dice(pred, gt) == pytest.approx(binary.dc(pred, gt), abs=TOL)
    ours = hd95(pred, gt, spacing)
    ref = binary.hd95(pred, gt, voxelspacing=spacing)
    assert ours == pytest.approx(ref, abs=TOL), (ours, ref)


def ball(shape, center, radius, spacing=None) -> np.ndarray:
    spacing = np.ones(len(shape)) if spacing is None else np.asarray(spacing)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij", sparse=True)
    return sum(((g - c) * s) ** 2 for g, c, s in zip(grids, center, spacing)) <= radius**2


@pytest.mark.parametrize("ndim", [2, 3])
@pytest.mark.parametrize("use_spacing", [False, True])
def test_random_masks(ndim, use_spacing):
    rng = np.random.default_rng(ndim * 10 + use_spacing)
    for _ in range(25):
        shape = tuple(int(s) for s in rng.integers(2, 40 if ndim == 2 else 18, ndim))
        pred = rng.random(shape) < rng.uniform(0.01, 0.6)
        gt = rng.random(shape) < rng.uniform(0.01, 0.6)
        pred.flat[rng.integers(pred.size)] = True
        gt.flat[rng.integers(gt.size)] = True
        spacing = tuple(rng.uniform(0.2, 4.0, ndim)) if use_spacing else None
        assert_like_medpy(pred, gt, spacing)


@pytest.mark.parametrize("spacing", [None, (1.0, 1.0, 1.0), (3.0, 0.7, 0.7), (0.5, 2.0, 1.25)])
def test_structured_3d(spacing):
    shape = (20, 32, 28)
    a = ball(shape, (10, 15, 12), 7)
    b = ball(shape, (11, 17, 13), 6)
    shell = a & ~ball(shape, (10, 15, 12), 6)
    single = np.zeros(shape, bool)
    single[3, 4, 5] = True
    other_single = np.zeros(shape, bool)
    other_single[17, 30, 2] = True
    border = np.zeros(shape, bool)
    border[:, :5, :] = True  # touches five faces of the image
    full = np.ones(shape, bool)  # everything is border
    corner = np.zeros(shape, bool)
    corner[-3:, -4:, -2:] = True
    line = np.zeros(shape, bool)
    line[2:18, 16, 14] = True
    pairs = [
        (a, b),
        (a, a),
        (shell, a),
        (shell, b),
        (single, a),
        (single, other_single),
        (single, single),
        (border, a),
        (full, a),
        (full, corner),
        (corner, single),
        (line, shell),
        (border, corner),
    ]
    for pred, gt in pairs:
        assert_like_medpy(pred, gt, spacing)
        assert_like_medpy(gt, pred, spacing)


@pytest.mark.parametrize("spacing", [None, (0.6, 1.7)])
def test_structured_2d(spacing):
    shape = (40, 33)
    disk = ball(shape, (20, 16), 9)
    ring = disk & ~ball(shape, (20, 16), 8)
    edge = np.zeros(shape, bool)
    edge[0, :] = True
    dot = np.zeros(shape, bool)
    dot[39, 32] = True
    for pred, gt in [(disk, ring), (ring, edge), (dot, disk), (edge, dot), (disk, disk)]:
        assert_like_medpy(pred, gt, spacing)


def test_small_objects_in_large_volume_crop_is_exact():
    """Objects far apart in a large volume: the union-box crop must equal medpy's full-volume result."""
    shape = (40, 96, 96)
    pred = ball(shape, (5, 10, 12), 3) | ball(shape, (35, 85, 80), 2)
    gt = ball(shape, (6, 12, 12), 4)
    for spacing in (None, (2.5, 0.8, 0.8)):
        assert_like_medpy(pred, gt, spacing)


def test_non_bool_inputs_and_helpers():
    rng = np.random.default_rng(3)
    pred = (rng.random((9, 9, 9)) < 0.3).astype(np.int16) * 7
    gt = (rng.random((9, 9, 9)) < 0.3).astype(np.float32)
    assert_like_medpy(pred, gt, (1.0, 2.0, 3.0))
    assert bounding_box(np.zeros((4, 4), bool)) is None
    m = np.zeros((5, 6), bool)
    m[1:3, 2:5] = True
    assert bounding_box(m) == (slice(1, 3), slice(2, 5))
    assert union_box([None, (slice(1, 3), slice(2, 5)), (slice(0, 2), slice(4, 6))]) == (
        slice(0, 3),
        slice(2, 6),
    )
    assert union_box([None]) is None
    assert surface(m).sum() == m.sum()  # 2 voxels thick: everything is surface


def test_hd95_refuses_empty_and_bad_spacing():
    a = np.zeros((4, 4, 4), bool)
    b = a.copy()
    b[1, 1, 1] = True
    with pytest.raises(ValueError, match="non-empty"):
        hd95(a, b)
    with pytest.raises(ValueError, match="non-empty"):
        hd95(b, a)
    with pytest.raises(ValueError, match="positive"):
        hd95(b, b, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(ValueError, match="shapes differ"):
        hd95(b, b[:3])


def test_dice_empty_cases():
    """One empty mask: 0 as medpy. Both empty: 1 (paper rule; medpy 0.5.2 divides 0 by 0 and gives NaN)."""
    empty = np.zeros((3, 3), bool)
    some = empty.copy()
    some[1, 1] = True
    for p, g in [(empty, some), (some, empty)]:
        assert dice(p, g) == binary.dc(p, g) == 0.0
    assert dice(empty, empty) == 1.0


@pytest.mark.parametrize("protocol", [PAPER, STRICT])
def test_protocol_empty_rules(protocol):
    shape, spacing = (10, 12, 14), (2.0, 1.0, 0.5)
    empty = np.zeros(shape, bool)
    some = ball(shape, (5, 6, 7), 3)
    both = protocol.score(empty, empty, spacing, shape)
    assert (both.dice, both.hd95, both.status) == (1.0, 0.0, "both_empty")
    missed = protocol.score(empty, some, spacing, shape)
    spurious = protocol.score(some, empty, spacing, shape)
    assert (missed.status, spurious.status) == ("missed", "spurious")
    assert missed.dice == spurious.dice == 0.0
    penalty = np.sqrt(20.0**2 + 12.0**2 + 7.0**2) if protocol is STRICT else 0.0
    assert missed.hd95 == pytest.approx(penalty) and spurious.hd95 == pytest.approx(penalty)
    ok = protocol.score(some, ball(shape, (5, 7, 7), 3), spacing, shape)
    ref = binary.hd95(some, ball(shape, (5, 7, 7), 3), voxelspacing=spacing if protocol is STRICT else None)
    assert ok.status == "ok" and ok.hd95 == pytest.approx(ref, abs=TOL)


def test_cli_protocol_names_match():
    from sss_nnunet.evaluation.cli import PROTOCOL_NAMES
    from sss_nnunet.evaluation.protocols import PROTOCOLS

    assert sorted(PROTOCOL_NAMES) == sorted(PROTOCOLS)


def test_image_diagonal():
    assert image_diagonal_mm((155, 240, 240), (1, 1, 1)) == pytest.approx(373.128664, abs=1e-6)


@pytest.mark.parametrize("spec", [SYNAPSE8, ACDC, BRATS_MSD], ids=lambda s: s.key)
@pytest.mark.parametrize("protocol", [PAPER, STRICT], ids=lambda p: p.name)
def test_label_maps_against_medpy(spec, protocol, helpers):
    """The full per-case path (crop per class, regions) equals medpy on the whole volume."""
    rng = np.random.default_rng(spec.dataset_id)
    task = task_from_spec(spec)
    n = len(spec.labels)
    shape, spacing = (16, 30, 26), (3.0, 0.9, 0.7)
    gt = helpers.random_blobs(rng, shape, n)
    pred = helpers.perturb(rng, gt, n)
    pred[pred == n] = 0  # the last label is missed
    rows = score_label_maps(pred, gt, spacing, task, protocol, case="c")
    assert [r.cls for r in rows] == [c.key for c in task.classes]
    for r, cls in zip(rows, task.classes):
        p, g = np.isin(pred, cls.values), np.isin(gt, cls.values)
        assert r.dice == pytest.approx(binary.dc(p, g), abs=TOL)
        if p.any() and g.any():
            ref = binary.hd95(p, g, voxelspacing=spacing if protocol.use_spacing else None)
            assert r.status == "ok" and r.hd95 == pytest.approx(ref, abs=TOL)
        else:
            assert r.status in ("missed", "spurious", "both_empty")
