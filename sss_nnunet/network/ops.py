"""Dimension-agnostic helpers: ``conv_op`` (nn.Conv2d / nn.Conv3d) decides 2D or 3D."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def dims_of(conv_op: type[nn.Module]) -> int:
    if conv_op is nn.Conv2d:
        return 2
    if conv_op is nn.Conv3d:
        return 3
    raise ValueError(f"conv_op must be nn.Conv2d or nn.Conv3d, got {conv_op}")


def instance_norm(dims: int) -> type[nn.Module]:
    return nn.InstanceNorm2d if dims == 2 else nn.InstanceNorm3d


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


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) -> (B, N, C) contiguous; no copy when x is channels-last."""
    return x.movedim(1, -1).reshape(x.shape[0], -1, x.shape[1])


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
