"""The Stage-Scan block: x + GlobalMix, + LocalMix, + ChannelMix on a stage's token grid.

One block on a map of N = prod(S) tokens (channels-last tokens t (B, N, C))::

    pi = gate(LN0(t))                                     # (B, n_orders) scan weights, per sample
    t  = t + GlobalMix(LN0(t), shift(LN0(t)), pi)        # one window-major sequence over the map
    t  = t + LocalMix(LN1(t), shift(LN1(t)), pi)         # one sequence per local window
    t  = t + ChannelMix(LN2(t), shift(LN2(t)))

``shift_input="mix"`` (default, Vision-RWKV): every sub-block shifts its own normalised input, the
global mix within its global windows, the local and channel mixes within the local windows.
``shift_input="block"``: one shift of LN0(t) within the finest windows is shared by every
sub-block (the local and channel mixes then mix their own input with neighbours of another one).
The shift shares follow the gate's weights differentiably (``shift.directional_shift``).

Attention-map contract (relied on by the attention-map tools): a block has ``global_mix`` and
``local_mix`` (``SpatialMix``, or None when an ablation drops that mix).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sss_nnunet.network.mixes import ChannelMix, SpatialMix
from sss_nnunet.network.ops import DropPath, to_map, to_tokens
from sss_nnunet.network.scan import ScanGate
from sss_nnunet.network.shift import (
    SHIFT_MODES,
    Orders,
    axis_shares,
    direction_weights,
    directional_shift,
    qshift_shares,
)
from sss_nnunet.network.windows import WindowGrid, stage_partition, stage_windows

MIXES = ("both", "global", "local")
SHIFT_INPUTS = ("mix", "block")


class StageScanBlock(nn.Module):
    """x + GlobalMix, + LocalMix, + ChannelMix (pre-norm, layer scale, drop path); (B, C, *S) -> same.

    Args:
        channels, dims: C and 2 or 3.
        global_windows / local_windows: None for the paper's schedule (``windows.stage_windows``:
            ``global_splits`` bisections of the map for the global mix, local windows of about
            ``local_tokens`` tokens, always finer); integers for the legacy per-stage counts along
            the longest axis (``windows.stage_partition``).
        global_splits: bisections of the (pooled) map into global windows (0: one window).
        local_tokens / min_tokens: tokens per local window (schedule) / legacy minimum.
        orders, snake: the stage's scan orders. scan_weights: dynamic | static | uniform.
        order_bias: initial gate logits (the stage schedule).
        shift_mode: none | qshift4 | stage (every axis both ways, shares from the weighted scan).
        shift_input: mix | block (see the module docstring).
        pool: k/v pooling factor.  mixes: both | global | local (ablations).
        decay_scale: sequence | window (``mixes.SpatialMix``).
    """

    def __init__(
        self,
        channels: int,
        dims: int,
        global_windows: int | None,
        local_windows: int | None,
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
        global_splits: int = 0,
        local_tokens: int = 64,
        shift_input: str = "mix",
        decay_scale: str = "sequence",
    ):
        super().__init__()
        if shift_mode not in SHIFT_MODES:
            raise ValueError(f"unknown shift mode {shift_mode!r}; expected one of {SHIFT_MODES}")
        if mixes not in MIXES:
            raise ValueError(f"unknown mixes {mixes!r}; expected one of {MIXES}")
        if shift_input not in SHIFT_INPUTS:
            raise ValueError(f"unknown shift_input {shift_input!r}; expected one of {SHIFT_INPUTS}")
        C = channels
        self.dims, self.shift_mode, self.pool, self.mixes = dims, shift_mode, pool, mixes
        self.global_windows, self.local_windows, self.min_tokens = global_windows, local_windows, min_tokens
        self.global_splits, self.local_tokens, self.shift_input = global_splits, local_tokens, shift_input
        shifted = shift_mode != "none"
        orders = [tuple(o) for o in orders]
        bias = order_bias if order_bias is not None else [0.0] * len(orders)
        self.gate = ScanGate(C, len(orders), bias, scan_weights) if len(orders) > 1 else None
        common = dict(orders=orders, snake=snake, pool=pool, layer=layer, shifted=shifted, decay_scale=decay_scale)
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

    def grids(self, pooled: tuple[int, ...]) -> tuple[WindowGrid, WindowGrid]:
        """(global grid, local grid) on the pooled map."""
        if self.global_windows is None or self.local_windows is None:
            return stage_windows(pooled, self.global_splits, self.local_tokens)
        return stage_partition(pooled, self.global_windows, self.local_windows, self.min_tokens)

    def partition(self, spatial: tuple[int, ...]) -> tuple[tuple[int, ...], WindowGrid, WindowGrid, tuple[int, ...]]:
        """(pooled size, global grid, local grid, finest window in stage voxels) of a ``spatial`` map."""
        kernel = [min(self.pool, s) for s in spatial]
        pooled = tuple(math.ceil(s / k) for s, k in zip(spatial, kernel))
        glob, local = self.grids(pooled)
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
        """(B or 1, 2 * dims, C) channel weights of the shift directions (None: no shift);
        differentiable in the scan weights."""
        if self.shift_mode == "none":
            return None
        C = self.norms[0].normalized_shape[0]
        if self.shift_mode == "qshift4":
            return direction_weights(qshift_shares(spatial, device), C)
        return direction_weights(axis_shares(self.mix_modules[0].orders, weights, spatial, device), C)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, C, *S) map -> same; runs on tokens, returns a channels-last view."""
        S = tuple(x.shape[2:])
        B, C = x.shape[:2]
        t = to_tokens(x)
        _, glob, local, finest = self.partition(S)
        kernel = [min(self.pool, s) for s in S]
        glob_window = tuple(z * k for z, k in zip(glob.sizes, kernel))
        h = self.norms[0](t)
        weights = self.scan_weights(h)
        dw = self.shift_weights(S, weights, x.device)

        def shift(hh: torch.Tensor, window: tuple[int, ...]) -> torch.Tensor | None:
            if dw is None:
                return None
            return directional_shift(hh.view(B, *S, C), dw, window).view(B, -1, C)

        shared = shift(h, finest) if self.shift_input == "block" else None
        branches = []  # (module call, shift window)
        if self.global_mix is not None:
            branches.append((lambda hh, xx: self.global_mix(hh, S, glob, xx, weights), glob_window))
        if self.local_mix is not None:
            branches.append((lambda hh, xx: self.local_mix(hh, S, local, xx, weights), finest))
        branches.append((lambda hh, xx: self.channel_mix(hh, xx), finest))
        for i, (branch, window) in enumerate(branches):
            hh = h if i == 0 else self.norms[i](t)
            xx = shared if self.shift_input == "block" else shift(hh, window)
            out = branch(hh, xx)
            if self.gammas is not None:
                out = out * self.gammas[i]
            t = t + self.drop(out)
        return to_map(t, S)
