"""RWKV blocks: scan gate, direction-aware token shift, spatial mix, channel mix, Stage-Scan block.

Blocks take and return (B, C, *S) maps; inside they work on channels-last tokens (B, N, C)
(a map viewed as (B, *S, C)), so projections, shifts and pooling need no layout copies.

Stage-Scan block (one per call, all on the stage's token grid of N = prod(S) tokens)::

    h0 = LN0(t);  pi = gate(mean_N h0)                  # (B, n_orders) scan weights, per sample
    xx = shift(h0; shares(pi), local-window borders)    # ONE direction-aware shift per block
    t  = t + GlobalMix(LN0(t), xx, pi)                  # one window-major sequence over the map
    t  = t + LocalMix(LN1(t), xx, pi)                   # one sequence per local window
    t  = t + ChannelMix(LN2(t), xx)

Spatial mix (Vision-RWKV style, bias-free projections), for input h and shifted tokens xx:
    x_r, x_k, x_v = h + (xx - h) * mu_{r,k,v}
    r = W_r x_r;  k = W_k x_k;  v = W_v x_v        (k, v on an avg-pooled grid if pool > 1)
    wkv = sum_d pi_d  scan_d^-1 BiWKV(decay / T, first / T, scan_d(k), scan_d(v))
    out = W_o(sigmoid(r) * LN(wkv))                 (wkv upsampled to the stage grid first)
Padding tokens get a key of ``PAD_KEY`` so their weight in every sum is zero to float precision.

Attention-map contract (relied on by the attention-map tools): a block has ``global_mix`` and
``local_mix`` (``SpatialMix``, or None when an ablation drops that mix); a SpatialMix's
``value`` (nn.Linear) OUTPUTS the v tokens fed to Bi-WKV (on the pooled grid when pooled), and
its ``out_norm`` (nn.LayerNorm) takes as INPUT the wkv result (B, N, C) on the stage's grid.
``SpatialMix.set_scan(mode)`` switches the scan in place (weights untouched).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sss_nnunet.kernels import bi_wkv
from sss_nnunet.network.ops import DropPath, linear_mode, to_map, to_tokens
from sss_nnunet.network.windows import WindowGrid, border_mask, cached, multi_scan, small_tensor, stage_partition

PAD_KEY = -1.0e4
SCAN_MODES = ("raster", "zigzag", "stage")
SCAN_WEIGHTS = ("dynamic", "static", "uniform")
SHIFT_MODES = ("none", "qshift4", "stage")
MIXES = ("both", "global", "local")
Orders = Sequence[tuple[int, ...]]


# ----------------------------------------------------------------------------- scans
def scan_orders(mode: str, dims: int) -> tuple[list[tuple[int, ...]], bool]:
    """Scan orders (axes slowest first) and snake flag of a scan mode.

    raster: one raster order (D, H, W); zigzag: the same as a snake; stage: ``dims`` snake
    orders, the cyclic axis orders (3D: D-H-W, H-W-D, W-D-H; 2D: H-W, W-H), so that every
    axis is once the fastest (neighbours one step apart) and once the slowest. Bi-WKV is
    symmetric under reversing a sequence, so reversed orders would add nothing.
    """
    forward = tuple(range(dims))
    if mode == "raster":
        return [forward], False
    if mode == "zigzag":
        return [forward], True
    if mode == "stage":
        return [forward[i:] + forward[:i] for i in range(dims)], True
    raise ValueError(f"unknown scan mode {mode!r}; expected one of {SCAN_MODES}")


def stage_scan_bias(n_orders: int, r: int, n_rwkv: int, strength: float = 1.0) -> list[float]:
    """Initial gate logits of the scan orders at RWKV stage r (0 = first RWKV stage).

    The preferred order moves from the first (D-H-W: slices kept together, the early large
    maps) at the first RWKV stage to the last at the deepest: logit_j = -strength |j - pos|,
    pos = r (n_orders - 1) / (n_rwkv - 1). The ``uniform`` ablation uses zeros everywhere.
    """
    if n_orders == 1:
        return [0.0]
    pos = r * (n_orders - 1) / max(n_rwkv - 1, 1)
    return [-strength * abs(j - pos) for j in range(n_orders)]


class ScanGate(nn.Module):
    """Per-sample weights (B, n_orders) of a stage's scan orders.

    ``dynamic``: softmax(W mean_N(h) + b), b initialised with the stage schedule, W small
    random (the gate depends on the input from the first step and learns from the loss).
    ``static``: softmax(b), learned, input-independent. ``uniform``: fixed 1 / n_orders.
    """

    def __init__(self, channels: int, n_orders: int, bias: Sequence[float], mode: str = "dynamic"):
        super().__init__()
        if mode not in SCAN_WEIGHTS:
            raise ValueError(f"unknown scan_weights {mode!r}; expected one of {SCAN_WEIGHTS}")
        self.mode, self.n_orders = mode, n_orders
        if mode == "dynamic":
            self.proj = nn.Linear(channels, n_orders)
            nn.init.normal_(self.proj.weight, std=0.02)
            with torch.no_grad():
                self.proj.bias.copy_(torch.tensor(list(bias), dtype=torch.float32))
        elif mode == "static":
            self.logits = nn.Parameter(torch.tensor(list(bias), dtype=torch.float32))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        """h: (B, N, C) tokens -> (B, n_orders) weights summing to 1 (float32)."""
        B = h.shape[0]
        if self.mode == "dynamic":
            return torch.softmax(self.proj(h.mean(1)).float(), -1)
        if self.mode == "static":
            return torch.softmax(self.logits.float(), -1).expand(B, -1)
        return h.new_full((B, self.n_orders), 1.0 / self.n_orders, dtype=torch.float32)


# ----------------------------------------------------------------------------- shift
def shift_directions(dims: int) -> list[tuple[int, int]]:
    """(axis, sign) of the 2 * dims one-voxel shifts: +D, -D, +H, -H, +W, -W (2D: +H .. -W)."""
    return [(a, s) for a in range(dims) for s in (1, -1)]


def axis_shares(orders: Orders, weights: torch.Tensor | None, spatial: Sequence[int], device) -> torch.Tensor:
    """(B or 1, dims) share of the shifted channels per axis for a weighted scan.

    Per order, the axis scanned slowest gets weight dims, the fastest 1 (consecutive tokens
    are neighbours along the fastest axis only; the further apart neighbours lie in the
    sequence, the more the shift must supply them). Shares are averaged with the scan weights
    (B, n_orders) (equal weights if None), set to 0 on axes of size 1 and normalised to sum 1.
    """
    dims = len(spatial)
    orders = tuple(tuple(o) for o in orders)

    def build():
        rows = [[(dims - list(o).index(a)) * float(spatial[a] > 1) for a in range(dims)] for o in orders]
        return small_tensor(rows, device)

    rank = cached(("axis_rank", orders, tuple(spatial), str(device)), build)  # (n_orders, dims)
    if weights is None:
        shares = rank.mean(0, keepdim=True)
    else:
        shares = weights.float() @ rank
    return shares / shares.sum(-1, keepdim=True).clamp_min(1e-6)


def qshift4_shares(spatial: Sequence[int], device) -> torch.Tensor:
    """(1, dims) Vision-RWKV's Q-Shift: the two in-plane axes (H, W) half each."""
    dims = len(spatial)
    return cached(("qshift4", dims, str(device)),
                  lambda: small_tensor([[0.0] * (dims - 2) + [0.5, 0.5]], device))


def direction_weights(shares: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, 2 * dims, C) soft channel partition among the shift directions.

    Each axis share is split equally between + and -; direction d owns the interval
    [S_d, S_{d+1}) of cumulative shares on [0, 1] and channel c the cell [c/C, (c+1)/C):
    the weight is their overlap times C, so every channel's weights sum to 1, a channel
    inside an interval belongs to one direction, and the weights follow the shares
    continuously (differentiable in the gate).
    """
    dir_shares = shares.repeat_interleave(2, dim=-1) / 2  # (B, 2 dims)
    upper = torch.cumsum(dir_shares, -1)
    lower = upper - dir_shares
    cells = cached(("cells", channels, str(shares.device)),
                   lambda: torch.arange(channels + 1, device=shares.device, dtype=torch.float32) / channels)
    lo, hi = cells[:-1], cells[1:]
    overlap = torch.minimum(hi, upper[..., None]) - torch.maximum(lo, lower[..., None])
    return overlap.clamp_min(0) * channels


def directional_shift(x: torch.Tensor, weights: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """Direction-aware token shift of a channels-last map x (B, *S, C).

    out[p, c] = sum_d weights[b, d, c] * x[p - sign_d e_axis_d, c], where the term is 0 if the
    source lies outside the map or in another window of size ``window`` (voxels per axis).
    weights: (B or 1, 2 * dims, C) (see ``direction_weights``).
    """
    dims = x.dim() - 2
    C = x.shape[-1]
    out = None
    for d, (axis, sign) in enumerate(shift_directions(dims)):
        size = x.shape[1 + axis]
        if size == 1:
            continue
        ax = 1 + axis
        src = x.narrow(ax, 0, size - 1) if sign > 0 else x.narrow(ax, 1, size - 1)
        pads = [0, 0] + [0, 0] * (dims - 1 - axis) + ([1, 0] if sign > 0 else [0, 1])
        shifted = F.pad(src, pads)
        view = [1] * (dims + 2)
        view[ax] = size
        mask = border_mask(size, int(window[axis]), sign, x.device, x.dtype).view(view)
        coef = mask * weights[:, d].to(x.dtype).view(weights.shape[0], *([1] * dims), C)
        out = shifted * coef if out is None else torch.addcmul(out, shifted, coef)
    return torch.zeros_like(x) if out is None else out


def _ramp(C: int) -> torch.Tensor:
    return torch.arange(C, dtype=torch.float32) / max(C - 1, 1)


def _mix_init(C: int, layer: tuple[int, int]) -> torch.Tensor:
    i, n = layer
    return 1 - (torch.arange(C, dtype=torch.float32) / C) ** (1 - i / max(n, 1))


# ----------------------------------------------------------------------------- mixes
class SpatialMix(nn.Module):
    """One Bi-WKV attention over windows of a map given as tokens (B, N, C); returns (B, N, C).

    Args:
        channels: C.   dims: 2 or 3.
        local: one sequence per window (True) or one window-major sequence (False).
        orders / snake: the stage's scan orders (axes slowest first), mixed by the block's
            scan weights; ``set_scan`` switches them in place.
        pool: k and v come from a map average-pooled by this factor (per axis, <= size).
        layer: (index, count) of this block among the network's RWKV blocks, for init.
        shifted: the block feeds shifted tokens (token-shift mixing coefficients exist).
    """

    def __init__(self, channels: int, dims: int, local: bool, orders: Orders, snake: bool, pool: int = 1,
                 layer: tuple[int, int] = (0, 1), shifted: bool = True):
        super().__init__()
        C = channels
        self.dims, self.local, self.pool = dims, local, pool
        self.orders, self.snake = [tuple(o) for o in orders], snake
        self.key, self.value, self.receptance, self.output = (nn.Linear(C, C, bias=False) for _ in range(4))
        nn.init.zeros_(self.output.weight)  # the residual branch starts as identity
        self.out_norm = nn.LayerNorm(C)
        i, n = layer
        depth = i / max(n - 1, 1)  # 0 at the first RWKV block, 1 at the last
        # per-channel decay spread over [-5, 3] (per token after /T), sharper in deeper blocks
        self.decay = nn.Parameter(-5 + 8 * _ramp(C) ** (0.7 + 1.3 * depth))
        self.first = nn.Parameter(math.log(0.3) + 0.5 * (((torch.arange(C) + 1) % 3) - 1).float())
        if shifted:  # share of the shifted token in each input
            frac = _mix_init(C, layer)
            self.mix_k = nn.Parameter(frac.clone())
            self.mix_v = nn.Parameter((frac - 0.3 * depth).clamp(0, 1))
            self.mix_r = nn.Parameter(1 - (1 - frac) ** 0.5)

    def set_scan(self, mode: str) -> None:
        """raster | zigzag: one D-H-W order (snake for zigzag); stage: the dims cyclic snake
        orders (weighted by the block's gate; equal weights if it was built without one)."""
        orders, snake = scan_orders(mode, self.dims)
        self.orders, self.snake = orders, snake

    def _pool(self, t: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
        """Average-pool tokens (B, N, C) of a ``spatial`` map by ``pool`` (<= size per axis)."""
        if self.pool == 1:
            return t
        k = [min(self.pool, s) for s in spatial]
        pool = F.avg_pool2d if self.dims == 2 else F.avg_pool3d
        return to_tokens(pool(to_map(t, spatial), k, k, ceil_mode=True, count_include_pad=False))

    def _wkv(self, k: torch.Tensor, v: torch.Tensor, grid: WindowGrid, weights: torch.Tensor | None) -> torch.Tensor:
        """k, v (B, N', C) on the (pooled) map of ``grid.spatial`` -> wkv (B, *spatial, C)."""
        B, _, C = k.shape
        spatial = grid.spatial
        if grid.needs_padding:
            pads = [0, 0]
            for have, want in zip(reversed(spatial), reversed(grid.padded)):
                pads += [0, want - have]
            k = F.pad(k.view(B, *spatial, C), pads, value=PAD_KEY).view(B, -1, C)
            v = F.pad(v.view(B, *spatial, C), pads).view(B, -1, C)
        T = grid.window_volume if self.local else grid.n_windows * grid.window_volume
        w, u = self.decay / T, self.first / T
        # all scan orders in ONE Bi-WKV call (orders go to the batch dimension): 1/n_orders of the
        # calls, each with n_orders times the sequences (fewer launches on a GPU, less overhead on a CPU)
        n = len(self.orders)
        index, inv = multi_scan(grid, self.orders, self.snake, k.device)
        ks, vs = k[:, index], v[:, index]  # (B, n * N, C), order-major
        ks, vs = (z.reshape(-1, T, C) for z in (ks, vs))  # (B * n * sequences, T, C)
        y = bi_wkv(w, u, ks, vs).reshape(B, -1, C)[:, inv]  # (B, n, N, C) in map order
        if n == 1:
            out = y[:, 0]
        elif weights is not None:
            out = (y * weights.to(y.dtype)[:, :, None, None]).sum(1)
        else:
            out = y.sum(1)
        out = out.view(B, *grid.padded, C)
        return out[(slice(None),) + tuple(slice(0, s) for s in spatial)] if grid.needs_padding else out

    def forward(self, h: torch.Tensor, spatial: tuple[int, ...], grid: WindowGrid,
                xx: torch.Tensor | None = None, weights: torch.Tensor | None = None) -> torch.Tensor:
        """h: (B, N, C) tokens of a ``spatial`` map; grid: windows on the pooled map; xx: shifted
        tokens (B, N, C) or None; weights: (B, n_orders) scan weights -> (B, N, C)."""
        B, N, C = h.shape
        if xx is not None and hasattr(self, "mix_k"):
            delta = xx - h
            x_r = torch.addcmul(h, delta, self.mix_r)
            if self.pool > 1:  # pooling is linear: mix on the pooled grid
                hp, dp = self._pool(h, spatial), self._pool(delta, spatial)
                x_k, x_v = torch.addcmul(hp, dp, self.mix_k), torch.addcmul(hp, dp, self.mix_v)
            else:
                x_k, x_v = torch.addcmul(h, delta, self.mix_k), torch.addcmul(h, delta, self.mix_v)
        else:
            x_r = h
            x_k = x_v = self._pool(h, spatial)
        r = self.receptance(x_r)
        wkv = self._wkv(self.key(x_k), self.value(x_v), grid, weights)
        if grid.spatial != tuple(spatial):
            mode = linear_mode(self.dims)
            wkv = F.interpolate(wkv.movedim(-1, 1), size=spatial, mode=mode, align_corners=False)
            wkv = wkv.movedim(1, -1)
        return self.output(torch.sigmoid(r) * self.out_norm(wkv.reshape(B, N, C)))


class ChannelMix(nn.Module):
    """sigmoid(W_r x_r) * W_v(relu(W_k x_k)^2) with token-shift mixing; (B, N, C) -> (B, N, C)."""

    def __init__(self, channels: int, hidden_ratio: float, layer: tuple[int, int] = (0, 1), shifted: bool = True):
        super().__init__()
        C, H = channels, int(round(channels * hidden_ratio))
        self.key = nn.Linear(C, H, bias=False)
        self.value = nn.Linear(H, C, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        nn.init.zeros_(self.value.weight)
        if shifted:
            frac = _mix_init(C, layer)
            self.mix_k = nn.Parameter(frac.clone())
            self.mix_r = nn.Parameter(frac.clone())

    def forward(self, h: torch.Tensor, xx: torch.Tensor | None = None) -> torch.Tensor:
        """h: (B, N, C) tokens, xx: shifted tokens or None -> (B, N, C)."""
        if xx is not None and hasattr(self, "mix_k"):
            delta = xx - h
            xk, xr = torch.addcmul(h, delta, self.mix_k), torch.addcmul(h, delta, self.mix_r)
        else:
            xk = xr = h
        k = torch.square(torch.relu(self.key(xk)))
        return torch.sigmoid(self.receptance(xr)) * self.value(k)


class StageScanBlock(nn.Module):
    """x + GlobalMix, + LocalMix, + ChannelMix (pre-norm, layer scale, drop path); (B, C, *S) -> same.

    Args:
        channels, dims: C and 2 or 3.
        global_windows / local_windows: windows along the longest axis of the (pooled) map for
            the two mixes (see ``windows.stage_partition``: local always finer than global,
            at least ``min_tokens`` tokens per local window where the map allows it).
        orders, snake: the stage's scan orders. scan_weights: dynamic | static | uniform.
        order_bias: initial gate logits (the stage schedule).
        shift_mode: none | qshift4 | stage (every axis both ways, shares from the weighted scan).
        pool: k/v pooling factor.  mixes: both | global | local (ablations).
    """

    def __init__(
        self,
        channels: int,
        dims: int,
        global_windows: int,
        local_windows: int,
        orders: Orders,
        snake: bool,
        shift_mode: str,
        pool: int,
        hidden_ratio: float,
        layer: tuple[int, int],
        order_bias: Sequence[float] | None = None,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        scan_weights: str = "dynamic",
        min_tokens: int = 32,
        mixes: str = "both",
    ):
        super().__init__()
        if shift_mode not in SHIFT_MODES:
            raise ValueError(f"unknown shift mode {shift_mode!r}; expected one of {SHIFT_MODES}")
        if mixes not in MIXES:
            raise ValueError(f"unknown mixes {mixes!r}; expected one of {MIXES}")
        C = channels
        self.dims, self.shift_mode, self.pool, self.mixes = dims, shift_mode, pool, mixes
        self.global_windows, self.local_windows, self.min_tokens = global_windows, local_windows, min_tokens
        shifted = shift_mode != "none"
        orders = [tuple(o) for o in orders]
        bias = order_bias if order_bias is not None else [0.0] * len(orders)
        self.gate = ScanGate(C, len(orders), bias, scan_weights) if len(orders) > 1 else None
        common = dict(orders=orders, snake=snake, pool=pool, layer=layer, shifted=shifted)
        n_branches = 2 if mixes != "both" else 3
        self.norms = nn.ModuleList(nn.LayerNorm(C) for _ in range(n_branches))
        self.global_mix = SpatialMix(C, dims, local=False, **common) if mixes != "local" else None
        self.local_mix = SpatialMix(C, dims, local=True, **common) if mixes != "global" else None
        self.channel_mix = ChannelMix(C, hidden_ratio, layer, shifted)
        self.drop = DropPath(drop_path)
        self.gammas = (
            nn.ParameterList(nn.Parameter(torch.full((C,), float(layer_scale))) for _ in range(n_branches))
            if layer_scale is not None else None
        )

    @property
    def mix_modules(self) -> list[SpatialMix]:
        return [m for m in (self.global_mix, self.local_mix) if m is not None]

    def partition(self, spatial: tuple[int, ...]) -> tuple[tuple[int, ...], WindowGrid, WindowGrid, tuple[int, ...]]:
        """(pooled size, global grid, local grid, shift window in stage voxels) of a ``spatial`` map."""
        kernel = [min(self.pool, s) for s in spatial]
        pooled = tuple(math.ceil(s / k) for s, k in zip(spatial, kernel))
        glob, local = stage_partition(pooled, self.global_windows, self.local_windows, self.min_tokens)
        finest = glob if self.mixes == "global" else local
        return pooled, glob, local, tuple(z * k for z, k in zip(finest.sizes, kernel))

    def scan_weights(self, h: torch.Tensor) -> torch.Tensor | None:
        """(B, n_orders) weights of the current scan orders, or None for a single order."""
        mix = self.mix_modules[0]
        if len(mix.orders) == 1:
            return None
        if self.gate is None or len(mix.orders) != self.gate.n_orders:
            return h.new_full((h.shape[0], len(mix.orders)), 1.0 / len(mix.orders), dtype=torch.float32)
        return self.gate(h)

    def shift_weights(self, spatial: tuple[int, ...], weights: torch.Tensor | None, device) -> torch.Tensor | None:
        """(B or 1, 2 * dims, C) channel weights of the shift directions (None: no shift)."""
        if self.shift_mode == "none":
            return None
        C = self.norms[0].normalized_shape[0]
        if self.shift_mode == "qshift4":
            return direction_weights(qshift4_shares(spatial, device), C)
        # detached: the gate learns through the weighted Bi-WKV outputs; a shift differentiable in its
        # weights would keep 2 * dims shifted copies of the map for backward
        weights = None if weights is None else weights.detach()
        return direction_weights(axis_shares(self.mix_modules[0].orders, weights, spatial, device), C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *S) map -> same; runs on tokens, returns a channels-last view."""
        S = tuple(x.shape[2:])
        B, C = x.shape[:2]
        t = to_tokens(x)
        _, glob, local, shift_window = self.partition(S)
        h = self.norms[0](t)
        weights = self.scan_weights(h)
        dw = self.shift_weights(S, weights, x.device)
        xx = None if dw is None else directional_shift(h.view(B, *S, C), dw, shift_window).view(B, -1, C)
        branches = []
        if self.global_mix is not None:
            branches.append(lambda hh: self.global_mix(hh, S, glob, xx, weights))
        if self.local_mix is not None:
            branches.append(lambda hh: self.local_mix(hh, S, local, xx, weights))
        branches.append(lambda hh: self.channel_mix(hh, xx))
        for i, branch in enumerate(branches):
            hh = h if i == 0 else self.norms[i](t)
            out = branch(hh)
            if self.gammas is not None:
                out = out * self.gammas[i]
            t = t + self.drop(out)
        return to_map(t, S)
