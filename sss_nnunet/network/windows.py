"""Window grids, stage partitions and scan orders: how a feature map becomes Bi-WKV sequences.

A map of spatial size S = (D, H, W) (or (H, W)) is split into a grid of windows. A *scan*
visits windows one after the other and, inside each window, its voxels in an axis order
(slowest axis first), optionally as a snake (boustrophedon) so consecutive tokens are
always neighbours. A scan is stored as one gather index over the padded, flattened map,
shaped (n_windows, window_volume):

- global mix: the whole index is one sequence (tokens of a window stay contiguous);
- local mix: each row is its own sequence (windows go to the batch dimension).

``inverse`` undoes the gather exactly. All sizes are in voxels of the current stage.

Device residency (GPU readiness): scan indices, their inverses and border masks are built
with torch integer arithmetic directly on the device that needs them (no numpy, no
host-to-device copy) and kept in ``DEVICE_CACHE``, keyed by (what, grid/shape, order,
device). Repeated forwards reuse the same tensors (``DEVICE_CACHE.misses`` counts builds).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

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


def grid_from_counts(spatial: tuple[int, ...], counts: tuple[int, ...]) -> WindowGrid:
    """Grid with about ``counts`` windows per axis (clamped to [1, size]), none only padding."""
    counts = [min(s, max(1, int(c))) for s, c in zip(spatial, counts)]
    sizes = [math.ceil(s / c) for s, c in zip(spatial, counts)]
    counts = [math.ceil(s / z) for s, z in zip(spatial, sizes)]
    return WindowGrid(tuple(spatial), tuple(counts), tuple(sizes))


def _window_grid(spatial: tuple[int, ...], windows: int) -> WindowGrid:
    """A grid with about ``windows`` windows along the longest axis, proportionally fewer
    along shorter axes (anisotropic maps), at least one per axis, none made only of padding."""
    longest = max(spatial)
    return grid_from_counts(spatial, tuple(round(windows * s / longest) for s in spatial))


window_grid = lru_cache(maxsize=1024)(_window_grid)


def _stage_partition(spatial: tuple[int, ...], global_windows: int, local_windows: int,
                    min_tokens: int) -> tuple[WindowGrid, WindowGrid]:
    """(global grid, local grid) of one Stage-Scan stage on a (pooled) map of ``spatial`` voxels.

    Rules, in order:
    1. the local grid has ``local_windows`` windows along the longest axis, halved while a
       window would hold fewer than ``min_tokens`` tokens;
    2. the global grid has ``global_windows`` along the longest axis, but is always strictly
       coarser than the local grid (fewer windows): if not, it takes half the local count;
    3. if the local grid is a single window (a small, deep map), it is split in two along its
       longest axis anyway, so the local mix never repeats the global one; this is the only
       case where a local window may hold fewer than ``min_tokens`` tokens.
    """
    w = max(1, int(local_windows))
    local = _window_grid(spatial, w)
    while local.window_volume < min_tokens and w > 1:
        w = max(1, w // 2)
        local = _window_grid(spatial, w)
    if local.n_windows == 1:
        axis = 0  # the longest axis; a plain loop, as dynamo cannot trace max(key=) on symbolic sizes
        for a in range(1, len(spatial)):
            if spatial[a] > spatial[axis]:
                axis = a
        if spatial[axis] > 1:
            counts = [1] * len(spatial)
            counts[axis] = 2
            local = grid_from_counts(spatial, tuple(counts))
    g = max(1, min(int(global_windows), w))
    glob = _window_grid(spatial, g)
    while glob.n_windows >= local.n_windows and g > 1:
        g = max(1, g // 2)
        glob = _window_grid(spatial, g)
    return glob, local


_stage_partition_cached = lru_cache(maxsize=1024)(_stage_partition)


def stage_partition(spatial: tuple[int, ...], global_windows: int, local_windows: int,
                    min_tokens: int) -> tuple[WindowGrid, WindowGrid]:
    """(global grid, local grid) of one stage; see ``_stage_partition`` (memoised in eager mode;
    traced directly under torch.compile, where it is plain integer arithmetic)."""
    fn = _stage_partition if torch.compiler.is_compiling() else _stage_partition_cached
    # int() specialises symbolic sizes under torch.compile's dynamic shapes: partitions are
    # python integer choices (comparisons, loops), and a patch size is static in nnU-Net anyway
    return fn(tuple(int(s) for s in spatial), int(global_windows), int(local_windows), int(min_tokens))


def bisect_sizes(sizes: tuple[int, ...], splits: int) -> tuple[int, ...]:
    """Window sizes after ``splits`` bisections: each halves (ceil) the longest window axis (the
    first of equal ones); an axis of one voxel is never split, so fewer splits happen on tiny maps."""
    sizes = list(sizes)
    for _ in range(max(0, int(splits))):
        axis = 0  # a plain loop, as dynamo cannot trace max(key=) on symbolic sizes
        for a in range(1, len(sizes)):
            if sizes[a] > sizes[axis]:
                axis = a
        if sizes[axis] == 1:
            break
        sizes[axis] = (sizes[axis] + 1) // 2
    return tuple(sizes)


def grid_from_sizes(spatial: tuple[int, ...], sizes: tuple[int, ...]) -> WindowGrid:
    """Windows of ``sizes`` voxels (ceil(spatial / sizes) per axis, the last one padded)."""
    return WindowGrid(tuple(spatial), tuple(math.ceil(s / z) for s, z in zip(spatial, sizes)), tuple(sizes))


@lru_cache(maxsize=1024)
def _stage_windows(spatial: tuple[int, ...], global_splits: int, local_tokens: int) -> tuple[WindowGrid, WindowGrid]:
    glob = bisect_sizes(spatial, global_splits)
    local = bisect_sizes(glob, 1)  # always finer than the global windows
    while math.prod(local) > local_tokens and max(local) > 1:
        local = bisect_sizes(local, 1)
    return grid_from_sizes(spatial, glob), grid_from_sizes(spatial, local)


def stage_windows(spatial: tuple[int, ...], global_splits: int, local_tokens: int) -> tuple[WindowGrid, WindowGrid]:
    """(global grid, local grid) of one RWKV stage on a (pooled) map: the paper's window schedule.

    Global: the map bisected ``global_splits`` times (longest window axis first). The network
    gives RWKV stage r of n_rwkv the value n_rwkv - 1 - r: the deepest stage is ONE window (plain
    global attention) and each shallower stage has one bisection more, so the number of global
    windows falls stage by stage (x2 per stage) on any map large enough to be split, whatever
    the strides and pooling (two stages with equally large pooled maps still differ).
    Local: the global windows bisected further, at least once (local windows are finer than
    the global ones at every stage, the deepest included, and nest inside them when sizes are
    even), until a window holds at most ``local_tokens`` tokens (default 64: 4 x 4 x 4 in 3D,
    8 x 8 in 2D). So the local window keeps a constant number of tokens at every stage (fewer
    only on maps smaller than two such windows, e.g. 2 x 4 x 4 at a deepest 4^3 stage) and its
    extent in image voxels doubles per axis with every stride-2 stage, like a conv pyramid's
    receptive field or Swin's fixed 7 x 7 windows. Why constant tokens: the local mix divides its
    decay by the window volume, so the same size gives every stage the same weight-vs-distance
    profile (how local the local mix is does not drift with depth), and its cost per token stays
    constant. Why at most 64: smaller windows (8 tokens) hardly reach beyond the one-voxel token
    shift; larger ones approach the global mix they are meant to refine.
    """
    fn = _stage_windows.__wrapped__ if torch.compiler.is_compiling() else _stage_windows
    return fn(tuple(int(s) for s in spatial), int(global_splits), int(local_tokens))


DEVICE_CACHE: dict = {}  # (what, *shape/order ints, device str[, dtype str]) -> tensor(s) on that device
CACHE_STATS = {"misses": 0}  # tensors built (eager); tests check that repeated forwards add none


def cached(key: tuple, build):
    """``DEVICE_CACHE[key]``, built once by ``build()`` (no host-to-device copy). Keys hold only
    ints, strings and tuples, so torch.compile guards on them cheaply. Traced under
    torch.compile, a missing entry is built inside the graph and stored as the graph's output.
    Entries are never inference tensors, even when first built under ``torch.inference_mode``."""
    value = DEVICE_CACHE.get(key)
    if value is None:
        if not torch.compiler.is_compiling() and torch.is_inference_mode_enabled():
            # nnU-Net predicts under torch.inference_mode: an inference tensor in the cache would
            # break every later forward that needs gradients ("cannot be saved for backward")
            with torch.inference_mode(False):
                value = build()
        else:
            value = build()
        DEVICE_CACHE[key] = value
        if not torch.compiler.is_compiling():
            CACHE_STATS["misses"] += 1
    return value


def small_tensor(values, device, dtype=torch.float32) -> torch.Tensor:
    """A small tensor of python numbers built on ``device`` by fills (no host-to-device copy)."""
    flat = [float(v) for row in values for v in (row if isinstance(row, (list, tuple)) else [row])]
    out = torch.zeros(len(flat), device=device, dtype=dtype)
    for i, v in enumerate(flat):
        if v != 0:
            out[i] = v
    shape = (len(values), -1) if values and isinstance(values[0], (list, tuple)) else (-1,)
    return out.view(shape)


def traversal(shape: tuple[int, ...], order: tuple[int, ...], snake: bool, device) -> torch.Tensor:
    """Coordinates (M, ndim) int64 of all cells of ``shape`` in visiting order, on ``device``.

    ``order`` lists axes from slowest to fastest. With ``snake`` every sub-traversal is
    reversed on odd steps of the axis above it (a reflected mixed-radix count), so
    consecutive cells are always adjacent.
    """
    M = math.prod(shape)
    rem = torch.arange(M, device=device, dtype=torch.int64)
    coords = [None] * len(shape)
    flip = torch.zeros(M, device=device, dtype=torch.bool) if snake else None
    inner = M
    for axis in order:
        n = shape[axis]
        inner //= n
        digit = torch.div(rem, inner, rounding_mode="floor")
        rem = rem - digit * inner
        if snake:
            digit = torch.where(flip, n - 1 - digit, digit)
            flip = flip ^ (digit % 2 == 1)
        coords[axis] = digit
    return torch.stack(coords, -1)


def _build_scan(grid: WindowGrid, order: tuple[int, ...], snake: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    win = traversal(grid.counts, order, snake, device)  # (n_windows, ndim)
    pos = traversal(grid.sizes, order, snake, device)  # (window_volume, ndim)
    flat = torch.zeros((win.shape[0], pos.shape[0]), dtype=torch.int64, device=device)
    stride = 1
    for axis in range(len(grid.padded) - 1, -1, -1):  # row-major position in the padded map
        flat = flat + (win[:, None, axis] * grid.sizes[axis] + pos[None, :, axis]) * stride
        stride *= grid.padded[axis]
    inv = torch.empty(flat.numel(), dtype=torch.int64, device=device)
    inv[flat.flatten()] = torch.arange(flat.numel(), device=device, dtype=torch.int64)
    return flat, inv


def scan_index(grid: WindowGrid, order: tuple[int, ...], snake: bool, device) -> torch.Tensor:
    """(n_windows, window_volume) int64 positions in the flattened padded map (cached)."""
    return scan_and_inverse(grid, order, snake, device)[0]


def scan_and_inverse(grid: WindowGrid, order: tuple[int, ...], snake: bool, device) -> tuple[torch.Tensor, ...]:
    """(index (n_windows, window_volume), inverse (n_windows * window_volume,)), cached per device."""
    key = ("scan", grid.spatial, grid.counts, grid.sizes, tuple(order), bool(snake), str(device))
    return cached(key, lambda: _build_scan(grid, tuple(order), snake, device))


def _build_multi_scan(grid: WindowGrid, orders: tuple[tuple[int, ...], ...], snake: bool,
                      device) -> tuple[torch.Tensor, torch.Tensor]:
    scans = [scan_and_inverse(grid, order, snake, device) for order in orders]
    n_tokens = grid.n_windows * grid.window_volume
    index = torch.cat([idx.flatten() for idx, _ in scans])
    inv = torch.stack([inv + d * n_tokens for d, (_, inv) in enumerate(scans)])
    return index, inv


def multi_scan(grid: WindowGrid, orders, snake: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Every scan order of a mix at once, so one Bi-WKV call serves them all (cached per device).

    Returns ``index`` (n_orders * N,) int64: the orders' gather indices one after the other
    (``x[:, index]`` is (B, n_orders * N, C) = (B, n_orders, N, C) order-major), and ``inverse``
    (n_orders, N): ``y[:, inverse]`` of the scanned results viewed as (B, n_orders * N, C) gives
    (B, n_orders, N, C), each order back in map order. N = padded voxels of ``grid``.
    """
    orders = tuple(tuple(o) for o in orders)
    key = ("multi_scan", grid.spatial, grid.counts, grid.sizes, orders, bool(snake), str(device))
    return cached(key, lambda: _build_multi_scan(grid, orders, snake, device))


def inverse(index: torch.Tensor) -> torch.Tensor:
    """The permutation that undoes ``flat[index.flatten()]``."""
    flat = index.flatten()
    inv = torch.empty_like(flat)
    inv[flat] = torch.arange(flat.numel(), device=flat.device)
    return inv


def border_mask(size: int, window: int, sign: int, device, dtype) -> torch.Tensor:
    """(size,) 0/1 mask of the destinations of a one-voxel shift by ``sign`` along an axis of
    ``size`` voxels cut into windows of ``window``: 0 where the source lies outside the map
    or in another window (cached per device and dtype)."""
    def build():
        pos = torch.arange(size, device=device)
        src = pos - sign
        ok = (src >= 0) & (src < size) & (torch.div(src, window, rounding_mode="floor")
                                           == torch.div(pos, window, rounding_mode="floor"))
        return ok.to(dtype)

    return cached(("mask", size, window, sign, str(device), str(dtype)), build)


def pad_to(x: torch.Tensor, padded: tuple[int, ...]) -> torch.Tensor:
    """Zero-pad the trailing spatial axes of (B, C, *S) up to ``padded``."""
    pads = []
    for s, p in zip(reversed(x.shape[2:]), reversed(padded)):
        pads += [0, p - s]
    return torch.nn.functional.pad(x, pads) if any(pads) else x


def crop_to(x: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
    return x[(slice(None), slice(None)) + tuple(slice(0, s) for s in spatial)]
