"""DySample: learned point sampling for upsampling, in 2D and 3D (Liu et al., ICCV 2023).

Every output voxel samples the input at its sub-voxel position plus a learned offset:
offsets come from a 1x1 conv (``dims * prod(scale)`` channels per group), are scaled by
0.25 (static, the default) or ``sigmoid(scope(x)) * 0.5`` (dynamic), pixel-shuffled to the
output grid and used with ``grid_sample(align_corners=False, padding_mode="border")``.
Offsets are in input voxels. The grid's last axis is ordered (x=W, y=H[, z=D]) and
normalised by (W, H[, D]). With zero offsets the result equals linear interpolation with
``align_corners=False`` (the sub-voxel positions of the output grid), for any per-axis
scale such as (1, 2, 2).

GPU readiness: the base grid and the per-axis offset unit are built once per (input size,
scale, device) in float32 (``windows.DEVICE_CACHE``, no host-to-device copy); offsets are
added and sampled in float32 under autocast (a half-precision grid is a few % of a voxel off
on large maps), the result is cast back to the input's dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from sss_nnunet import fastpaths
from sss_nnunet.network.fastconv import pointwise_conv, pointwise_op
from sss_nnunet.network.norm import channels_last_format
from sss_nnunet.network.windows import cached, small_tensor


def base_grid(spatial: Sequence[int], scale: Sequence[int], device, dtype) -> torch.Tensor:
    """(*S_out, dims) grid_sample coordinates, last axis (x=W, y=H[, z=D]), of the output
    voxel centres: input-voxel position (j + 0.5) / s - 0.5, normalised for
    align_corners=False as (2 p + 1) / n - 1 = (2 j + 1) / (n s) - 1."""
    axes = [(2 * torch.arange(n * f, device=device, dtype=dtype) + 1) / (n * f) - 1
            for n, f in zip(spatial, scale)]
    return torch.stack(torch.meshgrid(*axes, indexing="ij")[::-1], -1)


class DySample(nn.Module):
    """Upsample (B, C, *S) -> (B, C, *(S * scale)) with learned offsets.

    Args:
        channels: C (divisible by ``groups``; otherwise the largest divisor is used).
        scale: per-axis integer factor, e.g. (1, 2, 2); 1 on an axis means no upsampling there.
        dims: 2 or 3.
        groups: channel groups with their own offsets.
        dynamic: scale offsets by ``sigmoid(scope(x)) * 0.5`` instead of 0.25.
    The offset conv emits, per group, the offsets along (x=W, y=H[, z=D]) for every
    sub-position (row-major over ``scale``), in input voxels.
    """

    def __init__(self, channels: int, scale: Sequence[int], dims: int, groups: int = 4,
                 dynamic: bool = False):
        super().__init__()
        groups = math.gcd(channels, groups)
        self.scale = tuple(int(s) for s in scale)
        self.dims, self.groups, self.dynamic = dims, groups, dynamic
        conv = pointwise_op(nn.Conv2d if dims == 2 else nn.Conv3d)
        out = groups * dims * math.prod(self.scale)
        self.offset = conv(channels, out, 1)
        nn.init.normal_(self.offset.weight, std=1e-3)
        nn.init.zeros_(self.offset.bias)
        if dynamic:
            self.scope = conv(channels, out, 1, bias=False)
            nn.init.zeros_(self.scope.weight)

    def _base(self, spatial, device) -> tuple[torch.Tensor, torch.Tensor]:
        """(base grid (*S_out, dims), offset unit (dims,)) in float32 on ``device``, cached."""
        spatial = tuple(int(n) for n in spatial)
        return cached(("dysample", spatial, self.scale, str(device)),
                      lambda: (base_grid(spatial, self.scale, device, torch.float32),
                               small_tensor([2.0 / n for n in spatial[::-1]], device)))

    def grid(self, x: torch.Tensor) -> torch.Tensor:
        """(B * groups, *S_out, dims) sampling grid: base positions plus scaled offsets."""
        B, _, *S = x.shape
        base, unit = self._base(S, x.device)
        dims = self.dims
        if (not self.dynamic and fastpaths.enabled_outside_autocast(x)
                and x.is_contiguous(memory_format=channels_last_format(x))):
            return self._grid_channels_last(x, base, unit)
        o = self.offset(x).float()
        o = o * (torch.sigmoid(self.scope(x).float()) * 0.5 if self.dynamic else 0.25)
        # (B, G, dims, *scale, *S) -> (B, G, S0, s0, S1, s1, ..., dims): the pixel shuffle
        o = o.view(B, self.groups, dims, *self.scale, *S)
        o = o.permute(*self._shuffle()).reshape(B * self.groups, *(n * f for n, f in zip(S, self.scale)), dims)
        # offsets are in input voxels: normalised by 2 / n per axis, (x, y, z) = (W, H, D)
        return torch.addcmul(base, o, unit)

    def _shuffle(self) -> list[int]:
        """Permutation (B, G, dims, *scale, *S) -> (B, G, S0, s0, S1, s1, ..., dims)."""
        dims = self.dims
        return [0, 1] + [i for d in range(dims) for i in (3 + dims + d, 3 + d)] + [2]

    def _grid_channels_last(self, x: torch.Tensor, base: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
        """The static grid on the CPU (``fastpaths``): the factors 0.25 * unit folded into the offset
        conv's weights (a matmul over the channels of the channels-last map), then one permuted copy
        and one in-place add of the base grid, instead of four passes over the full-resolution grid."""
        B, _, *S = x.shape
        factor = (0.25 * unit).repeat_interleave(math.prod(self.scale)).repeat(self.groups)  # per offset channel
        factor = factor.to(self.offset.weight.dtype)
        w = self.offset.weight * factor.view(-1, *[1] * (self.offset.weight.dim() - 1))
        o = pointwise_conv(x, w, self.offset.bias * factor).float()
        o = o.view(B, self.groups, self.dims, *self.scale, *S).permute(*self._shuffle())
        shuffled = [v for n, f in zip(S, self.scale) for v in (n, f)]
        S_out = [n * f for n, f in zip(S, self.scale)]
        out = o.contiguous().add_(base.view(1, 1, *shuffled, self.dims))
        return out.view(B * self.groups, *S_out, self.dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, *S = x.shape
        xg = x.reshape(B * self.groups, C // self.groups, *S)
        grid = self.grid(x)  # float32
        out = F.grid_sample(xg.float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out.reshape(B, C, *out.shape[2:]).to(x.dtype)
