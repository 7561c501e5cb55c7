"""Dimension-agnostic helpers: ``conv_op`` (nn.Conv2d / nn.Conv3d) decides 2D or 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sss_nnunet import fastpaths
from sss_nnunet.network.norm import channels_last_format, instance_norm_channels_last, is_channels_last
from sss_nnunet.network.norm import to_tokens as to_tokens  # re-exported: the blocks take it from here


def dims_of(conv_op: type[nn.Module]) -> int:
    if conv_op is nn.Conv2d:
        return 2
    if conv_op is nn.Conv3d:
        return 3
    raise ValueError(f"conv_op must be nn.Conv2d or nn.Conv3d, got {conv_op}")


def instance_norm(dims: int) -> type[nn.Module]:
    return nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d


class InstanceNormByGroups(nn.GroupNorm):
    """``nn.InstanceNorm{2,3}d(C, eps, affine=...)`` computed as a group norm with one group per
    channel: the same function (per sample and channel over the spatial axes, no running
    statistics) and the same state-dict keys (weight, bias). Why: PyTorch's CPU instance norm
    runs through batch norm on a reshaped copy; at 1x32x64x128x128 its forward takes 66 ms
    against 44 ms here, and it is 3x slower again on channels-last maps (which the RWKV blocks
    return). Input (B, C, *S)."""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = None, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None):
        if track_running_stats:
            raise ValueError("InstanceNormByGroups has no running statistics (track_running_stats=True)")
        super().__init__(num_features, num_features, eps=eps, affine=affine, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Channels-last maps on the CPU: ``norm.instance_norm_channels_last`` (PyTorch's channels-last
        group norm loses float32 accuracy on large maps); anything else: group norm."""
        if fastpaths.enabled(x) and is_channels_last(x):
            return instance_norm_channels_last(x, self.weight, self.bias, self.eps)
        return super().forward(x)


def fast_norm(norm_op: type[nn.Module], norm_kwargs: dict | None) -> type[nn.Module]:
    """``InstanceNormByGroups`` for nn.InstanceNorm2d/3d without running statistics (nnU-Net's
    plans), any other norm_op unchanged."""
    if norm_op in (nn.InstanceNorm2d, nn.InstanceNorm3d) and not (norm_kwargs or {}).get("track_running_stats"):
        return InstanceNormByGroups
    return norm_op


def transposed_conv(dims: int) -> type[nn.Module]:
    return nn.ConvTranspose2d if dims == 2 else nn.ConvTranspose3d


def as_tuple(value: int | Sequence[int], dims: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(int(v) for v in value)
    if len(value) != dims:
        raise ValueError(f"expected {dims} values, got {value}")
    return value


def linear_mode(dims: int) -> str:
    return "bilinear" if dims == 2 else "trilinear"


def channels_last_on_cpu(x: torch.Tensor) -> torch.Tensor:
    """A (B, C, *S) map in channels-last memory layout when it lives on the CPU (same values and
    shape; no copy when it already is), any other tensor unchanged.

    Why: on the CPU, oneDNN's convolutions run on channels-last maps without layout conversions
    (instance norms go through ``network.norm``), and a channels-last input gives a channels-last output, so a
    network that starts channels-last stays so (a 1-channel map is both layouts at once, so a
    conv on it picks the classic one: hence a conversion after such convs too). Measured with
    ``benchmarks/bench_network.py`` (docs/network.md, "CPU speed"); other devices are untouched.
    """
    if x.dim() not in (4, 5) or not fastpaths.enabled(x):
        return x
    return x.contiguous(memory_format=channels_last_format(x))


def to_map(t: torch.Tensor, spatial: Sequence[int]) -> torch.Tensor:
    """(B, N, C) -> (B, C, *S) as a channels-last view of the same memory (no copy)."""
    return t.reshape(t.shape[0], *spatial, t.shape[-1]).movedim(-1, 1)


class DropPath(nn.Module):
    """Stochastic depth on the residual branch: drops whole samples with probability p."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand((x.shape[0],) + (1,) * (x.dim() - 1), device=x.device, dtype=x.dtype) >= self.p
        return x * keep / (1 - self.p)
