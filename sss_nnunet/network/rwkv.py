"""RWKV blocks: token shift, spatial mix, channel mix, Stage-Scan block.

Blocks take and return (B, C, *S) maps; inside they work on channels-last tokens (B, N, C)
(a map viewed as (B, *S, C)), so projections, shifts and pooling need no layout copies.

Spatial mix (Vision-RWKV style, bias-free projections):
    xx = shift(x);  x_r, x_k, x_v = x + (xx - x) * mu_{r,k,v}
    r = W_r x_r;  k = W_k x_k;  v = W_v x_v           (k, v from an avg-pooled map if pool > 1)
    wkv = sum_d softmax(alpha)_d  BiWKV(decay / T, first / T, scan_d(k), scan_d(v))
    out = W_o(sigmoid(r) * LN(wkv))
The *global* mix runs one sequence over the whole map, window by window; the *local* mix runs
one sequence per window (windows in the batch). Padding tokens get a key of ``PAD_KEY`` so
their weight in every sum is zero to float precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sss_nnunet.kernels import bi_wkv
from sss_nnunet.network.ops import DropPath, linear_mode, to_map, to_tokens
from sss_nnunet.network.windows import inverse, scan_index, window_grid

PAD_KEY = -1.0e4
Orders = Sequence[tuple[int, ...]]


def shift_groups(mode: str, dims: int, orders: Orders) -> list[tuple[int, int]]:
    """(axis, +-1) per channel group of the token shift.

    ``qshift4``: Vision-RWKV's four in-plane directions (+-H, +-W).
    ``stage``: both directions along every axis except the fastest axis of the block's
    first scan order (consecutive tokens are already neighbours along that one).
    ``none``: no shift.
    """
    if mode == "none":
        return []
    if mode == "qshift4":
        return [(dims - 2, 1), (dims - 2, -1), (dims - 1, 1), (dims - 1, -1)]
    if mode == "stage":
        fastest = orders[0][-1]
        return [(a, s) for a in range(dims) if a != fastest for s in (1, -1)]
    raise ValueError(f"unknown shift mode {mode!r}; expected none, qshift4 or stage")


def window_shift(x: torch.Tensor, groups: list[tuple[int, int]], window: Sequence[int]) -> torch.Tensor:
    """Token shift on a channels-last map x (B, *S, C): channel group g moves one voxel along
    groups[g] (axis, +-1); positions whose source would lie outside the map or across a border
    of a ``window``-sized window get zeros. Channels beyond the last full group stay put."""
    if not groups:
        return x
    C = x.shape[-1]
    n = C // len(groups)
    out = torch.zeros_like(x)
    out[..., n * len(groups):] = x[..., n * len(groups):]
    for g, (axis, sign) in enumerate(groups):
        size, ws = x.shape[1 + axis], window[axis]
        dst = [slice(None)] * x.dim()
        src = [slice(None)] * x.dim()
        dst[-1] = src[-1] = slice(g * n, (g + 1) * n)
        dst[1 + axis], src[1 + axis] = (slice(1, size), slice(0, size - 1)) if sign > 0 else \
            (slice(0, size - 1), slice(1, size))
        out[tuple(dst)] = x[tuple(src)]
        if ws < size:  # clear what crossed a window border
            first = torch.arange(ws if sign > 0 else ws - 1, size, ws, device=x.device)
            if first.numel():
                index = [slice(None)] * x.dim()
                index[1 + axis], index[-1] = first, slice(g * n, (g + 1) * n)
                out[tuple(index)] = 0
    return out


def _ramp(C: int) -> torch.Tensor:
    return torch.arange(C, dtype=torch.float32) / max(C - 1, 1)


class SpatialMix(nn.Module):
    """One Bi-WKV attention over windows of a map given as tokens (B, N, C); returns (B, N, C).

    Args:
        channels: C.
        dims: 2 or 3.
        windows: windows along the longest axis of the (pooled) map.
        local: one sequence per window (True) or one window-major sequence (False).
        orders: scan orders (axes slowest first); several are mixed by softmax weights.
        snake: zigzag scans.
        shift: (axis, sign) per channel group (see ``shift_groups``).
        shift_windows: window count the shift must not cross (the local windows).
        pool: k and v come from a map average-pooled by this factor (per axis, <= size).
        layer: (index, count) of this block among the network's RWKV blocks, for init.
        order_bias: initial softmax logits of the scan orders (stage-dependent).
    """

    def __init__(
        self,
        channels: int,
        dims: int,
        windows: int,
        local: bool,
        orders: Orders,
        snake: bool,
        shift: list[tuple[int, int]],
        shift_windows: int,
        pool: int = 1,
        layer: tuple[int, int] = (0, 1),
        order_bias: Sequence[float] | None = None,
    ):
        super().__init__()
        C = channels
        self.dims, self.windows, self.local = dims, windows, local
        self.orders, self.snake = [tuple(o) for o in orders], snake
        self.shift, self.shift_windows, self.pool = shift, shift_windows, pool
        self.key, self.value, self.receptance, self.output = (nn.Linear(C, C, bias=False) for _ in range(4))
        nn.init.zeros_(self.output.weight)  # the residual branch starts as identity
        self.out_norm = nn.LayerNorm(C)
        i, n = layer
        depth = i / max(n - 1, 1)  # 0 at the first RWKV block, 1 at the last
        ramp = _ramp(C)
        # per-channel decay spread over [-5, 3] (per token after /T), sharper in deeper blocks
        self.decay = nn.Parameter(-5 + 8 * ramp ** (0.7 + 1.3 * depth))
        self.first = nn.Parameter(math.log(0.3) + 0.5 * (((torch.arange(C) + 1) % 3) - 1).float())
        if shift:  # share of the shifted token in each input (only with a shift)
            frac = 1 - (torch.arange(C, dtype=torch.float32) / C) ** (1 - i / max(n, 1))
            self.mix_k = nn.Parameter(frac.clone())
            self.mix_v = nn.Parameter((frac - 0.3 * depth).clamp(0, 1))
            self.mix_r = nn.Parameter(1 - (1 - frac) ** 0.5)
        bias = torch.zeros(len(self.orders)) if order_bias is None else torch.tensor(order_bias).float()
        self.order_logits = nn.Parameter(bias) if len(self.orders) > 1 else None

    def _pool(self, t: torch.Tensor, spatial: tuple[int, ...]) -> tuple[torch.Tensor, tuple[int, ...]]:
        """Average-pool tokens (B, N, C) of a ``spatial`` map by ``pool`` (<= size per axis)."""
        if self.pool == 1:
            return t, spatial
        k = [min(self.pool, s) for s in spatial]
        pool = F.avg_pool2d if self.dims == 2 else F.avg_pool3d
        p = pool(to_map(t, spatial), k, k, ceil_mode=True, count_include_pad=False)
        return to_tokens(p), tuple(p.shape[2:])

    def _wkv(self, k: torch.Tensor, v: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
        """k, v (B, N, C) on a map of size ``spatial`` -> wkv (B, *spatial, C)."""
        B, _, C = k.shape
        grid = window_grid(spatial, self.windows)
        if grid.needs_padding:
            pads = [0, 0]
            for have, want in zip(reversed(spatial), reversed(grid.padded)):
                pads += [0, want - have]
            k = F.pad(k.view(B, *spatial, C), pads, value=PAD_KEY).view(B, -1, C)
            v = F.pad(v.view(B, *spatial, C), pads).view(B, -1, C)
        weights = torch.softmax(self.order_logits, 0) if self.order_logits is not None else None
        T = grid.window_volume if self.local else grid.n_windows * grid.window_volume
        w, u = self.decay / T, self.first / T
        out = 0
        for d, order in enumerate(self.orders):
            idx = scan_index(grid, order, self.snake, k.device)
            ks, vs = k[:, idx.flatten()], v[:, idx.flatten()]
            if self.local:
                ks, vs = (z.reshape(B * grid.n_windows, grid.window_volume, C) for z in (ks, vs))
            y = bi_wkv(w, u, ks, vs).reshape(B, -1, C)[:, inverse(idx)]
            out = out + (y if weights is None else weights[d] * y)
        out = out.view(B, *grid.padded, C)
        return out[(slice(None),) + tuple(slice(0, s) for s in spatial)] if grid.needs_padding else out

    def forward(self, t: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
        """t: (B, N, C) tokens of a ``spatial`` map -> (B, N, C)."""
        B, N, C = t.shape
        if self.shift:
            grid = window_grid(spatial, self.shift_windows)
            delta = window_shift(t.view(B, *spatial, C), self.shift, grid.sizes).view(B, N, C) - t
            mix_r, mix_k, mix_v = (torch.addcmul(t, delta, mu) for mu in (self.mix_r, self.mix_k, self.mix_v))
        else:
            mix_r = mix_k = mix_v = t
        r = self.receptance(mix_r)
        (xk, Sp), (xv, _) = self._pool(mix_k, spatial), self._pool(mix_v, spatial)
        wkv = self._wkv(self.key(xk), self.value(xv), Sp)
        if Sp != spatial:
            mode = linear_mode(self.dims)
            wkv = F.interpolate(wkv.movedim(-1, 1), size=spatial, mode=mode, align_corners=False)
            wkv = wkv.movedim(1, -1)
        return self.output(torch.sigmoid(r) * self.out_norm(wkv.reshape(B, N, C)))


class ChannelMix(nn.Module):
    """sigmoid(W_r x_r) * W_v(relu(W_k x_k)^2) with a token-shifted input; (B, N, C) -> (B, N, C)."""

    def __init__(self, channels: int, dims: int, hidden_ratio: float, shift, shift_windows: int,
                 layer: tuple[int, int] = (0, 1)):
        super().__init__()
        C, H = channels, int(round(channels * hidden_ratio))
        self.dims, self.shift, self.shift_windows = dims, shift, shift_windows
        self.key = nn.Linear(C, H, bias=False)
        self.value = nn.Linear(H, C, bias=False)
        self.receptance = nn.Linear(C, C, bias=False)
        nn.init.zeros_(self.value.weight)
        if shift:
            i, n = layer
            frac = 1 - (torch.arange(C, dtype=torch.float32) / C) ** (1 - i / max(n, 1))
            self.mix_k = nn.Parameter(frac.clone())
            self.mix_r = nn.Parameter(frac.clone())

    def forward(self, t: torch.Tensor, spatial: tuple[int, ...]) -> torch.Tensor:
        """t: (B, N, C) tokens of a ``spatial`` map -> (B, N, C)."""
        if self.shift:
            B, N, C = t.shape
            grid = window_grid(spatial, self.shift_windows)
            delta = window_shift(t.view(B, *spatial, C), self.shift, grid.sizes).view(B, N, C) - t
            xk, xr = torch.addcmul(t, delta, self.mix_k), torch.addcmul(t, delta, self.mix_r)
        else:
            xk = xr = t
        k = torch.square(torch.relu(self.key(xk)))
        return torch.sigmoid(self.receptance(xr)) * self.value(k)


class StageScanBlock(nn.Module):
    """x + GlobalMix(LN x), then + LocalMix(LN x), then + ChannelMix(LN x); (B, C, *S) -> same.

    Each branch has optional layer scale and drop path.
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
        order_bias: Sequence[float] | None,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
    ):
        super().__init__()
        C = channels
        shift = shift_groups(shift_mode, dims, orders)
        common = dict(orders=orders, snake=snake, shift=shift, shift_windows=local_windows, pool=pool,
                      layer=layer, order_bias=order_bias)
        self.norms = nn.ModuleList(nn.LayerNorm(C) for _ in range(3))
        self.global_mix = SpatialMix(C, dims, global_windows, local=False, **common)
        self.local_mix = SpatialMix(C, dims, local_windows, local=True, **common)
        self.channel_mix = ChannelMix(C, dims, hidden_ratio, shift, local_windows, layer)
        self.drop = DropPath(drop_path)
        self.gammas = (
            nn.ParameterList(nn.Parameter(torch.full((C,), float(layer_scale))) for _ in range(3))
            if layer_scale is not None else None
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *S) map -> same; runs on tokens, returns a channels-last view."""
        S = tuple(x.shape[2:])
        t = to_tokens(x)
        for i, branch in enumerate((self.global_mix, self.local_mix, self.channel_mix)):
            h = branch(self.norms[i](t), S)
            if self.gammas is not None:
                h = h * self.gammas[i]
            t = t + self.drop(h)
        return to_map(t, S)
