"""Convolutional pieces of RWKV-SSS: stem, downsampling, residual conv blocks, upsamplers.

Full-resolution 3D maps hold 10^5..10^6 voxels, where a dense 3x3x3 conv at 32 channels
alone costs ~28 GMAC at 64x128x128. Conv blocks are therefore depthwise-separable residual
blocks (``separable``, the default: k^dims * C + C^2 MACs per voxel, ~2 GMAC there);
``plain`` gives nnU-Net's conv-norm-act x2 for comparison. Downsampling is a conv with
kernel = stride.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from sss_nnunet.network.dysample import DySample
from sss_nnunet.network.fastconv import conv_variant, depthwise_op, pointwise_op
from sss_nnunet.network.ops import channels_last_on_cpu, transposed_conv


def _as_list(kernel: int | Sequence[int]) -> list[int]:
    return [kernel] if isinstance(kernel, int) else list(kernel)


def _same_padding(kernel: Sequence[int]) -> list[int]:
    return [k // 2 for k in kernel]


class ConvNormAct(nn.Sequential):
    """conv -> norm -> activation (activation optional); (B, C_in, *S) -> (B, C_out, *S / stride).

    On the CPU the conv's output is made channels-last (``ops.channels_last_on_cpu``; a no-op
    unless the conv saw a 1-channel input, which leaves the classic layout).
    """

    def __init__(self, conv_op, norm_op, nonlin, c_in, c_out, kernel, stride=1, groups=1, act=True,
                 norm_kwargs=None, nonlin_kwargs=None):
        conv_op = conv_variant(conv_op, c_in, c_out, _as_list(kernel), stride, groups)
        layers = [
            conv_op(c_in, c_out, kernel, stride=stride, padding=_same_padding(kernel) if stride == 1 else 0,
                    groups=groups, bias=False),
            norm_op(c_out, **(norm_kwargs or {"affine": True, "eps": 1e-5})),
        ]
        if act:
            layers.append(nonlin(**(nonlin_kwargs or {"inplace": True})))
        super().__init__(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self):
            x = channels_last_on_cpu(layer(x)) if i == 0 else layer(x)
        return x


class ResidualConvBlock(nn.Module):
    """x + block(x), (B, C, *S) -> same.

    ``separable``: depthwise k conv -> norm -> act -> pointwise conv -> norm, activation after
    the sum (a depthwise-separable version of nnU-Net's residual block: spatial mixing per
    channel, then channel mixing, a nonlinearity between). ``plain``: two dense k convs
    (nnU-Net's conv-norm-act x2 with a residual).

    Init of the separable factors: both kernels are drawn like the dense k conv they replace
    (uniform, bound 1 / sqrt(C prod(k)), PyTorch's default for fan-in C prod(k)), not with their own
    fan-in (prod(k) and C). Each factor is followed by a norm, so the forward function does not
    depend on their scale, only the training dynamics do: a kernel w before a norm moves per SGD step
    by ~ lr sqrt(fan_in) / |w|^2 relative to itself, so with their own, small fan-ins the factors
    learned sqrt(C) (depthwise) and sqrt(prod(k)) (pointwise) times slower than nnU-Net's dense convs
    under nnU-Net's SGD recipe (lr 1e-2, momentum 0.99). Measured (issue 23,
    tests/network/training_harness.py, blobs set, SGD recipe, 60 steps, network without RWKV stages):
    full-resolution Dice 0.00 with the own-fan-in init, 0.89 with this one (PlainConvUNet: 0.90).
    """

    def __init__(self, channels: int, kernel: Sequence[int], ops: dict, kind: str = "separable"):
        super().__init__()
        conv_op, norm_op, nonlin = ops["conv_op"], ops["norm_op"], ops["nonlin"]
        kw = dict(norm_kwargs=ops.get("norm_kwargs"), nonlin_kwargs=ops.get("nonlin_kwargs"))
        C = channels
        if kind == "separable":
            self.body = nn.Sequential(
                ConvNormAct(depthwise_op(conv_op), norm_op, nonlin, C, C, kernel, groups=C, **kw),
                ConvNormAct(conv_op, norm_op, nonlin, C, C, [1] * len(kernel), act=False, **kw),
            )
            bound = 1.0 / math.sqrt(C * math.prod(kernel))  # the dense k conv's fan-in (see above)
            for layer in self.body:
                nn.init.uniform_(layer[0].weight, -bound, bound)
        elif kind == "plain":
            self.body = nn.Sequential(
                ConvNormAct(conv_op, norm_op, nonlin, C, C, kernel, **kw),
                ConvNormAct(conv_op, norm_op, nonlin, C, C, kernel, act=False, **kw),
            )
        else:
            raise ValueError(f"unknown conv block {kind!r}; expected separable or plain")
        self.act = nonlin(**(ops.get("nonlin_kwargs") or {"inplace": True}))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # the sum goes into the body's fresh output (a norm's: no backward keeps it): one map fewer to allocate
        return self.act(self.body(x).add_(x))


class PositionConv(nn.Module):
    """x + DWConv_k(x): a cheap conditional position signal (CPVT-style); (B, C, *S) -> same."""

    def __init__(self, channels: int, kernel: Sequence[int], conv_op):
        super().__init__()
        self.conv = conv_op(channels, channels, kernel, padding=_same_padding(kernel), groups=channels)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


class Upsample(nn.Module):
    """(B, C_in, *S) -> (B, C_out, *(S * scale)).

    ``dysample``: 1x1 projection at the low resolution, then DySample (learned sampling).
    ``transposed``: a transposed conv with kernel = stride (nnU-Net's decoder).
    """

    def __init__(self, c_in: int, c_out: int, scale: Sequence[int], dims: int, ops: dict,
                 kind: str = "dysample"):
        super().__init__()
        scale = tuple(int(s) for s in scale)
        if kind == "dysample":
            self.body = nn.Sequential(
                pointwise_op(ops["conv_op"])(c_in, c_out, 1, bias=False),
                DySample(c_out, scale, dims) if any(s > 1 for s in scale) else nn.Identity(),
            )
        elif kind == "transposed":
            self.body = transposed_conv(dims)(c_in, c_out, scale, stride=scale, bias=False)
        else:
            raise ValueError(f"unknown upsampler {kind!r}; expected dysample or transposed")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """channels-last on the CPU, like every map of the network (DySample's grid_sample is not)."""
        return channels_last_on_cpu(self.body(x))
