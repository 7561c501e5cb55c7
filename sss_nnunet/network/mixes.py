"""Vision-RWKV spatial mix (Bi-WKV over windows, several scan orders) and channel mix.

Spatial mix, for input tokens h (B, N, C) and shifted tokens xx (B, N, C)::

    x_r, x_k, x_v = h + (xx - h) * mu_{r,k,v}
    r = W_r x_r;  k = W_k x_k;  v = W_v x_v        (k, v on an avg-pooled grid if pool > 1)
    wkv = sum_d pi_d  scan_d^-1 BiWKV(decay / T, first / T, scan_d(k), scan_d(v))
    out = W_o(sigmoid(r) * LN(wkv))                 (wkv upsampled to the stage grid first)

T is the sequence length (Vision-RWKV): the window volume for the local mix, the whole map for
the global mix, unless ``decay_scale="window"`` (Zig-RiR's inner RWKV) divides the global mix's
decay by the window volume too: then a token's weight falls by ``decay`` over one window instead
of over the whole map, so the window-major scan order decides which tokens are near.
Padding tokens get a key of ``PAD_KEY`` so their weight in every sum is zero to float precision.

Attention-map contract: a SpatialMix's ``value`` (nn.Linear) OUTPUTS the v tokens fed to Bi-WKV
(on the pooled grid when pooled), and its ``out_norm`` (nn.LayerNorm) takes as INPUT the wkv
result (B, N, C) on the stage's grid. ``SpatialMix.set_scan(mode)`` switches the scan in place.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from sss_nnunet import fastpaths
from sss_nnunet.kernels import bi_wkv
from sss_nnunet.network.ops import linear_mode, to_map, to_tokens
from sss_nnunet.network.scan import scan_orders
from sss_nnunet.network.shift import Orders
from sss_nnunet.network.windows import WindowGrid, multi_scan

PAD_KEY = -1.0e4
DECAY_SCALES = ("sequence", "window")


def _ramp(C: int) -> torch.Tensor:
    return torch.arange(C, dtype=torch.float32) / max(C - 1, 1)


def _mix_init(C: int, layer: tuple[int, int]) -> torch.Tensor:
    i, n = layer
    return 1 - (torch.arange(C, dtype=torch.float32) / C) ** (1 - i / max(n, 1))


def _token_mean(t: torch.Tensor, spatial: tuple[int, ...], k: list[int]) -> torch.Tensor:
    """avg_pool with kernel = stride = k of tokens (B, N, C) on a ``spatial`` map divisible by k, as
    the sum of the prod(k) strided sub-grids (CPU: avg_pool on channels-last maps converts them to
    the classic layout and back: 9.7 ms against 0.8 ms at 32^3 x 128, k = 2); (B, N / prod(k), C)."""
    B, _, C = t.shape
    split = [n for s, f in zip(spatial, k) for n in (s // f, f)]
    v = t.view(B, *split, C)
    out = None
    for offsets in itertools.product(*(range(f) for f in k)):
        index = (slice(None),) + tuple(i for o in offsets for i in (slice(None), o))
        out = v[index].clone() if out is None else out.add_(v[index])
    return out.div_(math.prod(k)).view(B, -1, C)


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
        decay_scale: sequence (decay / sequence length) | window (decay / window volume).
    """

    def __init__(self, channels: int, dims: int, local: bool, orders: Orders, snake: bool, pool: int = 1,
                 layer: tuple[int, int] = (0, 1), shifted: bool = True, decay_scale: str = "sequence"):
        super().__init__()
        if decay_scale not in DECAY_SCALES:
            raise ValueError(f"unknown decay_scale {decay_scale!r}; expected one of {DECAY_SCALES}")
        C = channels
        self.dims, self.local, self.pool, self.decay_scale = dims, local, pool, decay_scale
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
        if fastpaths.enabled(t) and all(s % f == 0 for s, f in zip(spatial, k)):
            return _token_mean(t, spatial, k)
        pool = F.avg_pool2d if self.dims == 2 else F.avg_pool3d
        return to_tokens(pool(to_map(t, spatial), k, k, ceil_mode=True, count_include_pad=False))

    def decay_length(self, grid: WindowGrid) -> int:
        """T that divides decay and bonus: the sequence length, or the window volume (``window``)."""
        if self.local or self.decay_scale == "window":
            return grid.window_volume
        return grid.n_windows * grid.window_volume

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
        scale = self.decay_length(grid)
        w, u = self.decay / scale, self.first / scale
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
