"""Window grids, scan orders and the token shift: exact inverses and neighbourhood properties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from sss_nnunet.network.rwkv import shift_groups, window_shift
from sss_nnunet.network.windows import inverse, scan_index, window_grid

SHAPES = [(5, 7, 9), (16, 40, 40), (4, 4, 4), (1, 6, 5), (7, 11), (32, 28)]


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


@pytest.mark.parametrize("spatial", SHAPES)
@pytest.mark.parametrize("snake", [False, True])
def test_scan_index_is_a_permutation_and_inverse_undoes_it(spatial, snake):
    dims = len(spatial)
    g = window_grid(spatial, 3)
    for order in itertools.permutations(range(dims)):
        idx = scan_index(g, order, snake, torch.device("cpu"))
        assert idx.shape == (g.n_windows, g.window_volume)
        flat = idx.flatten()
        assert torch.equal(flat.sort().values, torch.arange(int(np.prod(g.padded))))
        x = torch.randn(2, flat.numel(), 3)
        assert torch.equal(x[:, flat][:, inverse(idx)], x)


def _coords(flat: torch.Tensor, padded) -> np.ndarray:
    return np.stack(np.unravel_index(flat.numpy(), padded), -1)


@pytest.mark.parametrize("spatial", [(6, 5, 7), (9, 8)])
def test_windows_stay_contiguous_and_snake_steps_are_neighbours(spatial):
    g = window_grid(spatial, 2)
    idx = scan_index(g, tuple(range(len(spatial))), True, torch.device("cpu"))
    for row in idx:  # one window: every consecutive pair is one voxel apart (snake)
        c = _coords(row, g.padded)
        assert np.abs(np.diff(c, axis=0)).sum(1).max() == 1
        lo = c.min(0)
        assert np.all(c.max(0) - lo == np.array(g.sizes) - 1)  # a single window block


def _reference_shift(x: torch.Tensor, groups, window) -> torch.Tensor:
    """Loop version: out[p] = x[p - sign e_axis] if inside the map and the same window."""
    B, *S, C = x.shape
    n = C // len(groups)
    out = torch.zeros_like(x)
    out[..., n * len(groups):] = x[..., n * len(groups):]
    for g, (axis, sign) in enumerate(groups):
        for p in itertools.product(*(range(s) for s in S)):
            q = list(p)
            q[axis] -= sign
            if 0 <= q[axis] < S[axis] and q[axis] // window[axis] == p[axis] // window[axis]:
                chans = slice(g * n, (g + 1) * n)
                out[(slice(None), *p, chans)] = x[(slice(None), *q, chans)]
    return out


@pytest.mark.parametrize("mode", ["qshift4", "stage"])
@pytest.mark.parametrize(("spatial", "window"),
                         [((4, 5, 6), (2, 3, 4)), ((5, 7), (2, 3)), ((3, 4, 4), (3, 4, 4))])
def test_window_shift_matches_the_definition(mode, spatial, window):
    dims = len(spatial)
    groups = shift_groups(mode, dims, [tuple(range(dims))])
    x = torch.randn(2, *spatial, 4 * len(groups) + 3)
    torch.testing.assert_close(window_shift(x, groups, window), _reference_shift(x, groups, window))


def test_stage_shift_skips_the_fastest_scan_axis():
    assert {a for a, _ in shift_groups("stage", 3, [(0, 1, 2)])} == {0, 1}
    assert {a for a, _ in shift_groups("stage", 3, [(2, 1, 0)])} == {1, 2}
    assert shift_groups("none", 3, [(0, 1, 2)]) == []
    assert len(shift_groups("qshift4", 2, [(0, 1)])) == 4
