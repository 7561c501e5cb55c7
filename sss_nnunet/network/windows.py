"""Window grids and scan orders: how a feature map becomes Bi-WKV sequences and back.

A map of spatial size S = (D, H, W) (or (H, W)) is split into a grid of windows. A *scan*
visits windows one after the other and, inside each window, its voxels in an axis order
(slowest axis first), optionally as a snake (boustrophedon) so consecutive tokens are
always neighbours. A scan is stored as one gather index over the padded, flattened map,
shaped (n_windows, window_volume):

- global mix: the whole index is one sequence (tokens of a window stay contiguous);
- local mix: each row is its own sequence (windows go to the batch dimension).

``inverse`` undoes the gather exactly. All sizes are in voxels of the current stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class WindowGrid:
    """``counts`` windows of ``sizes`` voxels per axis; ``padded`` = counts * sizes >= spatial."""

    spatial: tuple[int, ...]
    counts: tuple[int, ...]
    sizes: tuple[int, ...]

    @property
    def padded(self) -> tuple[int, ...]:
        return tuple(c * s for c, s in zip(self.counts, self.sizes))

    @property
    def n_windows(self) -> int:
        return math.prod(self.counts)

    @property
    def window_volume(self) -> int:
        return math.prod(self.sizes)

    @property
    def needs_padding(self) -> bool:
        return self.padded != self.spatial


def window_grid(spatial: tuple[int, ...], windows: int) -> WindowGrid:
    """A grid with about ``windows`` windows along the longest axis, proportionally fewer
    along shorter axes (anisotropic maps), at least one per axis, none made only of padding."""
    longest = max(spatial)
    counts = [min(s, max(1, round(windows * s / longest))) for s in spatial]
    sizes = [math.ceil(s / c) for s, c in zip(spatial, counts)]
    counts = [math.ceil(s / z) for s, z in zip(spatial, sizes)]
    return WindowGrid(tuple(spatial), tuple(counts), tuple(sizes))


def _traversal(shape: tuple[int, ...], order: tuple[int, ...], snake: bool) -> np.ndarray:
    """Coordinates (M, ndim) of all cells of ``shape`` in visiting order.

    ``order`` lists axes from slowest to fastest. With ``snake`` every sub-traversal is
    reversed on odd steps of the axis above it, so consecutive cells are always adjacent.
    """
    if not order:
        return np.zeros((1, len(shape)), dtype=np.int64)
    axis, rest = order[0], order[1:]
    inner = _traversal(shape, rest, snake)
    parts = []
    for i in range(shape[axis]):
        block = inner[::-1] if (snake and i % 2) else inner
        block = block.copy()
        block[:, axis] = i
        parts.append(block)
    return np.concatenate(parts)


@lru_cache(maxsize=256)
def _scan_index_np(grid: WindowGrid, order: tuple[int, ...], snake: bool) -> np.ndarray:
    win = _traversal(grid.counts, order, snake)  # (n_windows, ndim)
    pos = _traversal(grid.sizes, order, snake)  # (window_volume, ndim)
    coords = win[:, None, :] * np.asarray(grid.sizes) + pos[None, :, :]  # (nW, L, ndim)
    strides = np.cumprod((grid.padded[1:] + (1,))[::-1])[::-1]
    return (coords * strides).sum(-1)


def scan_index(grid: WindowGrid, order: tuple[int, ...], snake: bool, device: torch.device) -> torch.Tensor:
    """(n_windows, window_volume) int64 positions in the flattened padded map."""
    return torch.from_numpy(_scan_index_np(grid, tuple(order), snake)).to(device)


def inverse(index: torch.Tensor) -> torch.Tensor:
    """The permutation that undoes ``flat[index.flatten()]``."""
    flat = index.flatten()
    inv = torch.empty_like(flat)
    inv[flat] = torch.arange(flat.numel(), device=flat.device)
    return inv


def pad_to(x: torch.Tensor, padded: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad the trailing spatial axes of (B, C, *S) up to ``padded``."""
    pads = []
    for s, p in zip(reversed(x.shape[2:]), reversed(padded)):
        pads += [0, p - s]
    return torch.nn.functional.pad(x, pads) if any(pads) else x


def crop_to(x: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    return x[(slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)]


def valid_mask(grid: WindowGrid, device: torch.device) -> torch.Tensor:
    """(prod(padded),) bool: True where a padded-map position is inside the real map."""
    axes = [torch.arange(p, device=device) < s for p, s in zip(grid.padded, grid.spatial)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij")).all(0).reshape(-1)
