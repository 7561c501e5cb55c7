"""Window grids, stage partitions, scan orders and the direction-aware shift."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sss_nnunet.kernels import bi_wkv
from sss_nnunet.network.rwkv import (
    PAD_KEY,
    SpatialMix,
    axis_shares,
    direction_weights,
    directional_shift,
    qshift4_shares,
    scan_orders,
    shift_directions,
)
from sss_nnunet.network.windows import (
    CACHE_STATS,
    border_mask,
    grid_from_counts,
    inverse,
    multi_scan,
    scan_and_inverse,
    scan_index,
    stage_partition,
    traversal,
    window_grid,
)

SHAPES = [(5, 7, 9), (16, 40, 40), (4, 4, 4), (1, 6, 5), (7, 11), (32, 28)]
CPU = torch.device("cpu")


@pytest.mark.parametrize("spatial", SHAPES)
@pytest.mark.parametrize("windows", [1, 2, 3, 4, 8])
def test_grid_covers_the_map_without_empty_windows(spatial, windows):
    g = window_grid(spatial, windows)
    for s, c, z in zip(spatial, g.counts, g.sizes):
        assert c * z >= s > (c - 1) * z  # padded cover, and the last window holds real voxels
        assert 1 <= c <= s
    # anisotropic maps get proportionally fewer windows along short axes
    longest = int(np.argmax(spatial))
    assert g.counts[longest] == max(g.counts)


def _reference_traversal(shape, order, snake):
    """The recursive definition: the inner traversal is reversed on odd steps of the outer axis."""
    if not order:
        return [[0] * len(shape)]
    inner = _reference_traversal(shape, order[1:], snake)
    out = []
    for i in range(shape[order[0]]):
        block = inner[::-1] if (snake and i % 2) else inner
        for c in block:
            c = list(c)
            c[order[0]] = i
            out.append(c)
    return out


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 2, 3), (4, 3), (1, 5, 2)])
@pytest.mark.parametrize("snake", [False, True])
def test_traversal_matches_the_recursive_definition(shape, snake):
    for order in itertools.permutations(range(len(shape))):
        got = traversal(shape, order, snake, CPU).tolist()
        assert got == _reference_traversal(shape, order, snake)


@pytest.mark.parametrize("spatial", SHAPES)
@pytest.mark.parametrize("snake", [False, True])
def test_scan_index_is_a_permutation_and_inverse_undoes_it(spatial, snake):
    dims = len(spatial)
    g = window_grid(spatial, 3)
    for order in itertools.permutations(range(dims)):
        idx, inv = scan_and_inverse(g, order, snake, CPU)
        assert idx.shape == (g.n_windows, g.window_volume)
        flat = idx.flatten()
        assert torch.equal(flat.sort().values, torch.arange(int(np.prod(g.padded))))
        x = torch.randn(2, flat.numel(), 3)
        assert torch.equal(x[:, flat][:, inv], x)
        assert torch.equal(inv, inverse(idx))


def test_scan_indices_are_built_once_per_grid_order_and_device():
    g = window_grid((6, 10, 13), 2)  # a size no other test uses
    before = CACHE_STATS["misses"]
    a = scan_and_inverse(g, (1, 2, 0), True, CPU)
    assert CACHE_STATS["misses"] == before + 1
    b = scan_and_inverse(g, (1, 2, 0), True, torch.device("cpu"))
    assert a[0] is b[0] and a[1] is b[1]  # the same tensors, not copies
    c = scan_and_inverse(g, (1, 2, 0), False, CPU)  # another scan: built once more
    assert c[0] is not a[0] and CACHE_STATS["misses"] == before + 2
    m1 = border_mask(9, 3, 1, CPU, torch.float32)
    assert border_mask(9, 3, 1, CPU, torch.float32) is m1
    assert m1.tolist() == [0, 1, 1, 0, 1, 1, 0, 1, 1]
    assert border_mask(9, 3, -1, CPU, torch.float32).tolist() == [1, 1, 0, 1, 1, 0, 1, 1, 0]


def _coords(flat: torch.Tensor, padded) -> np.ndarray:
    return np.stack(np.unravel_index(flat.numpy(), padded), -1)


@pytest.mark.parametrize("spatial", [(6, 5, 7), (9, 8)])
def test_windows_stay_contiguous_and_snake_steps_are_neighbours(spatial):
    g = window_grid(spatial, 2)
    for order in scan_orders("stage", len(spatial))[0]:
        idx = scan_index(g, order, True, CPU)
        for row in idx:  # one window: every consecutive pair is one voxel apart (snake)
            c = _coords(row, g.padded)
            assert np.abs(np.diff(c, axis=0)).sum(1).max() == 1
            lo = c.min(0)
            assert np.all(c.max(0) - lo == np.array(g.sizes) - 1)  # a single window block
        # the fastest axis of the order is the one consecutive tokens step along most often
        steps = np.abs(np.diff(_coords(idx[0], g.padded), axis=0)).argmax(1)
        assert np.bincount(steps, minlength=len(spatial)).argmax() == order[-1]


def test_stage_orders_make_every_axis_fastest_once():
    for dims in (2, 3):
        orders, snake = scan_orders("stage", dims)
        assert snake and len(orders) == dims
        assert sorted(o[-1] for o in orders) == list(range(dims))
        assert sorted(o[0] for o in orders) == list(range(dims))
    assert scan_orders("raster", 3) == ([(0, 1, 2)], False)


@pytest.mark.parametrize("spatial", [(16, 16, 16), (4, 4, 4), (8, 8, 8), (2, 20, 16), (64, 56), (4, 4), (1, 8, 8)])
@pytest.mark.parametrize(("gw", "lw"), [(4, 8), (1, 2), (1, 1), (2, 2), (8, 4)])
def test_local_partition_is_always_finer_than_the_global_one(spatial, gw, lw):
    glob, local = stage_partition(spatial, gw, lw, 32)
    assert local.n_windows > glob.n_windows, (glob, local)
    if local.window_volume < 32:  # only when the map is too small for two such windows
        assert local.n_windows == 2 and glob.n_windows == 1
    assert glob.counts != local.counts


def test_partition_schedule_and_minimum_tokens():
    # the default 3D schedule at the benchmark topology (pooled 16^3, 16^3, 8^3, 4^3)
    parts = [stage_partition(s, g, lw, 32) for s, g, lw in
             [((16,) * 3, 4, 8), ((16,) * 3, 2, 4), ((8,) * 3, 1, 2), ((4,) * 3, 1, 1)]]
    local_counts = [p[1].n_windows for p in parts]
    assert local_counts == sorted(local_counts, reverse=True) and local_counts[0] > local_counts[-1]
    assert all(p[1].window_volume >= 32 for p in parts)  # 8 tokens per window were asked for at stage 0
    deepest_global, deepest_local = parts[-1]
    assert deepest_global.n_windows == 1 and deepest_local.n_windows == 2  # local != global at the deepest


def _reference_shift(x: torch.Tensor, weights: torch.Tensor, window) -> torch.Tensor:
    """Loop version: out[p] = sum_d w_d x[p - sign_d e_axis_d] if inside the map and the same window."""
    B, *S, C = x.shape
    out = torch.zeros_like(x)
    for d, (axis, sign) in enumerate(shift_directions(len(S))):
        for p in itertools.product(*(range(s) for s in S)):
            q = list(p)
            q[axis] -= sign
            if 0 <= q[axis] < S[axis] and q[axis] // window[axis] == p[axis] // window[axis]:
                out[(slice(None), *p)] += weights[:, d] * x[(slice(None), *q)]
    return out


@pytest.mark.parametrize(("spatial", "window"),
                         [((4, 5, 6), (2, 3, 4)), ((5, 7), (2, 3)), ((3, 4, 4), (3, 4, 4)), ((1, 4, 3), (1, 2, 3))])
def test_directional_shift_matches_the_definition(spatial, window):
    dims = len(spatial)
    torch.manual_seed(0)
    x = torch.randn(2, *spatial, 10)
    weights = torch.softmax(torch.randn(2, 2 * dims, 10), 1)  # soft, per sample
    torch.testing.assert_close(directional_shift(x, weights, window), _reference_shift(x, weights, window))


@pytest.mark.parametrize("spatial", [(5, 6, 7), (6, 7), (3, 8, 6)])
def test_shift_moves_a_one_hot_voxel_along_each_direction(spatial):
    dims = len(spatial)
    centre = tuple(s // 2 for s in spatial)
    x = torch.zeros(1, *spatial, 4)
    x[(0, *centre)] = 1.0
    for d, (axis, sign) in enumerate(shift_directions(dims)):
        w = torch.zeros(1, 2 * dims, 4)
        w[:, d] = 1.0
        out = directional_shift(x, w, spatial)
        target = list(centre)
        target[axis] += sign
        expected = torch.zeros_like(x)
        expected[(0, *target)] = 1.0
        assert torch.equal(out, expected), (axis, sign)
        # a window border right after the centre along that axis stops it
        window = [s for s in spatial]
        window[axis] = centre[axis] + 1 if sign > 0 else centre[axis]
        if window[axis] > 0:
            assert out.sum() == x.sum() and directional_shift(x, w, window).sum() == 0


def test_direction_weights_partition_channels_and_follow_the_shares():
    shares = torch.tensor([[0.5, 0.25, 0.25], [0.0, 0.5, 0.5]])
    w = direction_weights(shares, 12)
    assert w.shape == (2, 6, 12)
    torch.testing.assert_close(w.sum(1), torch.ones(2, 12))
    torch.testing.assert_close(w.sum(2), torch.tensor([[3.0, 3, 1.5, 1.5, 1.5, 1.5], [0, 0, 3, 3, 3, 3]]))
    # shares move with the scan: the slowest axis of an order gets most, axes of size 1 none
    s = axis_shares([(0, 1, 2)], None, (8, 8, 8), CPU)
    assert s[0, 0] > s[0, 1] > s[0, 2] > 0
    s = axis_shares([(0, 1, 2), (1, 2, 0), (2, 0, 1)], torch.tensor([[1.0, 0, 0], [0, 0, 1.0]]), (1, 8, 8), CPU)
    assert s[0, 0] == 0 and s[0, 1] > s[0, 2] and s[1, 2] > s[1, 1]
    torch.testing.assert_close(s.sum(1), torch.ones(2))
    uniform = axis_shares(scan_orders("stage", 3)[0], torch.full((1, 3), 1 / 3), (8, 8, 8), CPU)
    torch.testing.assert_close(uniform, torch.full((1, 3), 1 / 3))
    # Vision-RWKV's Q-Shift on every live axis: in 3D the D axis is not dropped
    torch.testing.assert_close(qshift4_shares((8, 8, 8), CPU), torch.full((1, 3), 1 / 3))
    assert qshift4_shares((1, 8, 8), CPU).tolist() == [[0.0, 0.5, 0.5]]
    assert qshift4_shares((8, 8), CPU).tolist() == [[0.5, 0.5]]


@pytest.mark.parametrize(("spatial", "counts"), [((6, 5, 4), (2, 1, 2)), ((7, 9), (3, 2)), ((4, 4, 4), (1, 1, 1))])
@pytest.mark.parametrize("snake", [False, True])
def test_multi_scan_is_every_single_scan_side_by_side(spatial, counts, snake):
    grid = grid_from_counts(spatial, counts)
    dims = len(spatial)
    orders = [tuple(range(dims))[i:] + tuple(range(dims))[:i] for i in range(dims)]
    index, inv = multi_scan(grid, orders, snake, "cpu")
    n_tok = grid.n_windows * grid.window_volume
    assert index.shape == (len(orders) * n_tok,) and inv.shape == (len(orders), n_tok)
    x = torch.randn(2, n_tok, 3)
    gathered = x[:, index].view(2, len(orders), n_tok, 3)
    for d, order in enumerate(orders):
        single = scan_index(grid, order, snake, "cpu").flatten()
        assert torch.equal(gathered[:, d], x[:, single])
    # the inverse puts every order's tokens back in map order
    back = gathered.reshape(2, -1, 3)[:, inv]
    for d in range(len(orders)):
        assert torch.equal(back[:, d], x)
    assert multi_scan(grid, orders, snake, "cpu")[0] is index  # cached


@pytest.mark.parametrize("local", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_spatial_mix_one_call_equals_one_call_per_order(local, weighted):
    torch.manual_seed(0)
    orders, snake = scan_orders("stage", 3)
    mix = SpatialMix(5, 3, local=local, orders=orders, snake=snake).double()
    grid = grid_from_counts((4, 6, 5), (2, 2, 2))  # windows of 2 x 3 x 3: padded to (4, 6, 6)
    assert grid.padded == (4, 6, 6)
    B, C = 2, 5
    k, v = (torch.randn(B, 4 * 6 * 5, C, dtype=torch.float64) for _ in range(2))
    weights = torch.softmax(torch.randn(B, 3, dtype=torch.float64), -1) if weighted else None
    got = mix._wkv(k, v, grid, weights)
    # reference: pad (keys of padding = PAD_KEY), one Bi-WKV call per order, unscan, weighted sum
    kp = torch.nn.functional.pad(k.view(B, 4, 6, 5, C), [0, 0, 0, 1], value=PAD_KEY).view(B, -1, C)
    vp = torch.nn.functional.pad(v.view(B, 4, 6, 5, C), [0, 0, 0, 1]).view(B, -1, C)
    T = grid.window_volume if local else grid.n_windows * grid.window_volume
    want = 0
    for d, order in enumerate(orders):
        idx, inv = scan_and_inverse(grid, order, snake, "cpu")
        ks, vs = kp[:, idx.flatten()].reshape(-1, T, C), vp[:, idx.flatten()].reshape(-1, T, C)
        y = bi_wkv(mix.decay / T, mix.first / T, ks, vs).reshape(B, -1, C)[:, inv]
        want = want + (y * weights[:, d, None, None] if weighted else y)
    want = want.view(B, 4, 6, 6, C)[:, :, :, :5]
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
