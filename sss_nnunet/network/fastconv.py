"""nn.Conv2d / nn.Conv3d variants with CPU fast paths for the three kinds of conv RWKV-SSS runs at
full resolution: depthwise (spatial, one group per channel), pointwise (1x1(x1)) and the stem (few
input channels). Same parameters and state-dict keys as the stock module; each computes the same
function as ``F.conv{2,3}d`` (``fastpaths``: only on the CPU, in eager mode; tests compare them
against the stock convs, values and gradients, in float64).

Measured on this CPU (one thread, a one-off timing of each layer alone at 1 x 32 x 64 x 128 x 128,
2026-12-06):

- pointwise conv of a channels-last map: PyTorch's convolution 0.58 s forward, a matmul over the
  channels 0.11 s (forward + backward at batch 2: 3.5 s against 1.3 s);
- depthwise 3x3x3 conv of a channels-last map: the forward takes 0.15 s, PyTorch's backward for
  the input 0.72 s; the same gradient as a forward conv with the flipped kernel 0.15 s;
- the stem's weight gradient (1 input channel, 3x3x3, 32 outputs): 0.66 s in PyTorch with a
  channels-last output gradient, 0.14 s as im2col + one matmul;
- the stem's forward (2026-12-07, beside a training run): PyTorch's conv plus the conversion of
  its output to channels-last 0.30 s, im2col + matmuls into a channels-last output 0.10 s.
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn

from sss_nnunet import fastpaths
from sss_nnunet.network import cpu_compiled
from sss_nnunet.network.norm import channels_last_format
from sss_nnunet.network.ops import channels_last_on_cpu

# the stem's im2col matrix (C_in * prod(k) rows) is built in slabs of at most this many elements
_IM2COL_ELEMENTS = 1 << 24
# ... and in the forward in slabs of at most this many (cache-sized: 4 planes of 128 x 128 x 27 rows)
_IM2COL_FORWARD_ELEMENTS = 1 << 21


def _conv(x: torch.Tensor, weight: torch.Tensor, padding: list[int], groups: int) -> torch.Tensor:
    return (F.conv3d if x.dim() == 5 else F.conv2d)(x, weight, None, 1, padding, 1, groups)


def _aten_grad(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, padding: list[int], groups: int,
               wanted: str) -> torch.Tensor:
    """PyTorch's own gradient of a stride-1 conv for ``wanted`` = "input" or "weight"."""
    dims = weight.dim() - 2
    mask = [wanted == "input", wanted == "weight", False]
    return torch.ops.aten.convolution_backward(grad, x, weight, None, [1] * dims, padding, [1] * dims, False,
                                               [0] * dims, groups, mask)[0 if wanted == "input" else 1]


def _same_stride_one(conv: nn.Module) -> bool:
    """Stride 1, no dilation, odd kernel, padding k // 2 on every side: the input's own size."""
    k = conv.kernel_size
    return (all(s == 1 for s in conv.stride) and all(d == 1 for d in conv.dilation) and all(n % 2 for n in k)
            and conv.padding == tuple(n // 2 for n in k) and conv.padding_mode == "zeros")


# ------------------------------------------------------------------------------------ pointwise
def pointwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A 1x1(x1) convolution of a channels-last (B, C, *S) map as one matmul over the channels:
    (B, O, *S), channels-last, the same function as ``F.conv{2,3}d(x, weight, bias)``."""
    return F.linear(x.movedim(1, -1), weight.flatten(1), bias).movedim(-1, 1)


class _PointwiseOnCPU:
    """1x1(x1) kernels, stride 1, one group: a matmul on channels-last maps on the CPU."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fastpaths.enabled(x) and x.dim() == self.weight.dim() and x.is_contiguous(
                memory_format=channels_last_format(x)):
            return pointwise_conv(x, self.weight, self.bias)
        return super().forward(x)


class PointwiseConv2d(_PointwiseOnCPU, nn.Conv2d):
    """nn.Conv2d for 1x1 kernels (stride 1, one group): a matmul on the CPU."""


class PointwiseConv3d(_PointwiseOnCPU, nn.Conv3d):
    """nn.Conv3d for 1x1x1 kernels (stride 1, one group): a matmul on the CPU."""


# ------------------------------------------------------------------------------------ depthwise
class _DepthwiseConv(torch.autograd.Function):
    """Depthwise conv with 'same' padding whose input gradient is the forward conv of the output
    gradient with the flipped kernel (the exact adjoint for stride 1, odd kernels, padding k // 2)
    and whose weight gradient on large maps is compiled (``network.cpu_compiled``)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: list[int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return _conv(x, weight, padding, x.shape[1])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=channels_last_format(grad))
        spatial = list(range(2, weight.dim()))
        gx = _conv(grad, weight.flip(spatial), ctx.padding, x.shape[1]) if ctx.needs_input_grad[0] else None
        gw = None
        if ctx.needs_input_grad[1]:
            gw = cpu_compiled.depthwise_weight_grad(x, grad, tuple(weight.shape[2:]), tuple(ctx.padding))
            if gw is None:
                gw = _aten_grad(grad, x, weight, ctx.padding, x.shape[1], "weight")
        return gx, gw, None


class _DepthwiseOnCPU:
    """Runs the convolution on a channels-last input on the CPU and returns the channels-last
    result; with 'same' padding and no bias its backward is ``_DepthwiseConv``'s.

    PyTorch's CPU depthwise convolution in (B, C, *S) layout is slow, above all its backward
    (measured here on 2026-12-02 at 2x32x24x24x64, 2 threads, with a one-off timing of this
    layer alone: forward+backward 313 ms against 86 ms in channels-last, conversions included).
    The network keeps its maps channels-last on the CPU, so no conversion happens here then.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = channels_last_on_cpu(x)
        if (fastpaths.enabled_outside_autocast(x) and self.bias is None
                and self.groups == x.shape[1] == self.out_channels and _same_stride_one(self)):
            return _DepthwiseConv.apply(x, self.weight, list(self.padding))
        return super().forward(x)


class DepthwiseConv2d(_DepthwiseOnCPU, nn.Conv2d):
    """nn.Conv2d for depthwise use (channels-last on the CPU)."""


class DepthwiseConv3d(_DepthwiseOnCPU, nn.Conv3d):
    """nn.Conv3d for depthwise use (channels-last on the CPU)."""


# ----------------------------------------------------------------------------------------- stem
def _im2col_slabs(x: torch.Tensor, kernel: tuple[int, ...], padding: tuple[int, ...], elements: int):
    """Yields (b, s0, n0, cols): the im2col matrix of sample b, planes s0 .. s0 + n0 - 1 of the first
    spatial axis, of a stride-1 conv of x (B, C, *S): cols (C * prod(k), n0 * prod(S[1:])), rows
    ordered (c, tap) like ``weight.flatten(1)``, at most about ``elements`` elements per slab."""
    B, C, *S = x.shape
    xp = F.pad(x, [p for n in reversed(padding) for p in (n, n)])
    taps = list(itertools.product(*(range(k) for k in kernel)))
    rows = C * len(taps)
    step = max(1, elements // (rows * math.prod(S[1:])))
    for b in range(B):
        for s0 in range(0, S[0], step):
            n0 = min(step, S[0] - s0)
            cols = torch.stack([xp[(b, slice(None), slice(s0 + t[0], s0 + t[0] + n0),
                                    *(slice(o, o + n) for o, n in zip(t[1:], S[1:])))] for t in taps], 1)
            yield b, s0, n0, cols.reshape(rows, -1)


def _im2col_conv(x: torch.Tensor, weight: torch.Tensor, padding: tuple[int, ...]) -> torch.Tensor:
    """A stride-1 conv (no bias) as im2col + one matmul per slab, written straight into a
    channels-last (B, O, *S) output (PyTorch's conv of a 1-channel input returns the classic
    layout, and converting its full-resolution output costs as much again)."""
    B, C, *S = x.shape
    O = weight.shape[0]
    out = torch.empty(B, *S, O, dtype=x.dtype, device=x.device)
    wt = weight.flatten(1).t()
    for b, s0, n0, cols in _im2col_slabs(x, tuple(weight.shape[2:]), padding, _IM2COL_FORWARD_ELEMENTS):
        torch.mm(cols.t(), wt, out=out[b, s0:s0 + n0].view(-1, O))
    return out.movedim(-1, 1)


def _im2col_weight_grad(x: torch.Tensor, grad: torch.Tensor, kernel: tuple[int, ...],
                        padding: tuple[int, ...]) -> torch.Tensor:
    """d loss / d weight of a stride-1 conv: sum over voxels of im2col(x) (C_in * prod(k) rows)
    times the output gradient (B, O, *S, channels-last or not); built in slabs of the first axis."""
    C, O = x.shape[1], grad.shape[1]
    g = grad.movedim(1, -1)  # (B, *S, O)
    rows = C * math.prod(kernel)
    out = torch.zeros(rows, O, dtype=torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype)
    for b, s0, n0, cols in _im2col_slabs(x, kernel, padding, _IM2COL_ELEMENTS):
        out += (cols @ g[b, s0:s0 + n0].reshape(-1, O)).to(out.dtype)
    return out.t().reshape(O, C, *kernel)


class _StemConv(torch.autograd.Function):
    """A conv of the network input (few channels, stride 1, 'same' padding): forward and weight
    gradient by im2col + matmuls, the output channels-last."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, padding: list[int]) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding = padding
        return _im2col_conv(x, weight, tuple(padding))

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight = ctx.saved_tensors
        gx = None
        if ctx.needs_input_grad[0]:
            gx = _aten_grad(grad, x, weight, ctx.padding, 1, "input")
        gw = None
        if ctx.needs_input_grad[1]:
            gw = _im2col_weight_grad(x, grad, tuple(weight.shape[2:]), tuple(ctx.padding)).to(weight.dtype)
        return gx, gw, None


class _StemOnCPU:
    """A dense conv with few input channels (C_in * prod(k) <= 128: the network's first conv);
    on the CPU with 'same' padding, stride 1 and no bias it runs through ``_StemConv``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if fastpaths.enabled_outside_autocast(x) and self.bias is None and self.groups == 1 and _same_stride_one(self):
            return _StemConv.apply(x, self.weight, list(self.padding))
        return super().forward(x)


class StemConv2d(_StemOnCPU, nn.Conv2d):
    """nn.Conv2d for the first conv of the network (im2col weight gradient on the CPU)."""


class StemConv3d(_StemOnCPU, nn.Conv3d):
    """nn.Conv3d for the first conv of the network (im2col weight gradient on the CPU)."""


# ------------------------------------------------------------------------------------- choosing
_VARIANTS = {
    "pointwise": {nn.Conv2d: PointwiseConv2d, nn.Conv3d: PointwiseConv3d},
    "depthwise": {nn.Conv2d: DepthwiseConv2d, nn.Conv3d: DepthwiseConv3d},
    "stem": {nn.Conv2d: StemConv2d, nn.Conv3d: StemConv3d},
}
STEM_MAX_ROWS = 128  # C_in * prod(k) of a conv that runs as a stem (im2col rows)


def pointwise_op(conv_op: type[nn.Module]) -> type[nn.Module]:
    """The 1x1 variant of nn.Conv2d / nn.Conv3d (any other conv_op unchanged)."""
    return _VARIANTS["pointwise"].get(conv_op, conv_op)


def depthwise_op(conv_op: type[nn.Module]) -> type[nn.Module]:
    """The depthwise variant of nn.Conv2d / nn.Conv3d (any other conv_op unchanged)."""
    return _VARIANTS["depthwise"].get(conv_op, conv_op)


def conv_variant(conv_op: type[nn.Module], c_in: int, c_out: int, kernel: list[int], stride, groups: int
                 ) -> type[nn.Module]:
    """The fast variant of ``conv_op`` for a conv of these hyper-parameters (or conv_op itself)."""
    strided = any(s != 1 for s in ([stride] if isinstance(stride, int) else stride))
    if strided:
        return conv_op
    if groups == 1 and all(k == 1 for k in kernel):
        return pointwise_op(conv_op)
    if groups == c_in == c_out > 1:
        return depthwise_op(conv_op)
    if groups == 1 and c_in * math.prod(kernel) <= STEM_MAX_ROWS:
        return _VARIANTS["stem"].get(conv_op, conv_op)
    return conv_op
