"""Instance norm of a channels-last CPU map with float32 statistics that stay accurate.

PyTorch's CPU group norm on channels-last maps sums each channel over the whole map in float32
one element after another: at 1x32x64x128x128 (mean 5, std 3) its output is off by 2e-3 (the
classic-layout kernel: 1.6e-6). Here the statistics come from reductions that keep float32
accurate: the mean from PyTorch's cascaded reduction, the sum of squares from a matrix product
(t^T t over runs of 1024 voxels and blocks of 32 channels, partials summed cascaded) formed into the
variance in float64, and computed again on the centred map where mean^2 > 16 variance would make
E[x^2] - mean^2 cancel (error 3e-6 at the size above, against the float64 reference); the backward
pass is instance norm's closed form with the same reductions.
Shapes: x (B, C, *S) channels-last; weight, bias (C,) or None.
"""

from __future__ import annotations

import torch

BLOCK = 32  # channels per matrix product (the diagonal is what is needed: cost S * C * BLOCK)
ROWS = 1024  # voxels per partial product: float32 accumulates short runs, the partials are summed cascaded
CENTRE = 16.0  # centre the map first where mean^2 > CENTRE * variance (E[x^2] - mean^2 would lose > 4 bits)


def _sum_of_products(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum_s a[:, s, c] * b[:, s, c] for (B, S, C) tensors: (B, C), as the diagonals of batched products
    over runs of ``ROWS`` voxels (a single float32 matrix product over 10^6 voxels is off by ~1e-4)."""
    B, S, C = a.shape
    whole = S // ROWS * ROWS
    out = a.new_zeros(B, C)
    for i in range(B):
        for c0 in range(0, C, BLOCK):
            c1 = min(c0 + BLOCK, C)
            x, y = a[i, :, c0:c1], b[i, :, c0:c1]
            if whole:
                xs, ys = x[:whole].view(-1, ROWS, c1 - c0), y[:whole].view(-1, ROWS, c1 - c0)
                out[i, c0:c1] += torch.bmm(xs.transpose(1, 2), ys).diagonal(dim1=1, dim2=2).sum(0)
            if whole < S:
                out[i, c0:c1] += torch.mm(x[whole:].T, y[whole:]).diagonal()
    return out


def to_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) -> (B, N, C) contiguous; no copy when x is channels-last."""
    return x.movedim(1, -1).reshape(x.shape[0], -1, x.shape[1])


class ChannelsLastInstanceNorm(torch.autograd.Function):
    """y = (x - mean) / sqrt(var + eps) * weight + bias per sample and channel over the spatial axes."""

    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        t = to_tokens(x)
        n = t.shape[1]
        mean = t.mean(1)
        var = _sum_of_products(t, t).double() / n - mean.double() ** 2
        centred = bool((mean.double() ** 2 > CENTRE * var).any())  # E[x^2] - mean^2 would cancel: centre first
        if centred:
            d = t - mean[:, None]
            var = _sum_of_products(d, d).double() / n
        var = var.clamp_min(0)
        rstd = torch.rsqrt(var + eps).to(x.dtype)
        scale = rstd * weight if weight is not None else rstd
        shift = -mean * scale + (bias if bias is not None else 0)
        y = torch.empty_like(x)  # channels-last like x; filled through its token view (not a view itself)
        torch.addcmul(shift[:, None], t, scale[:, None], out=to_tokens(y))
        ctx.save_for_backward(x, mean, rstd, weight)
        ctx.centred = centred
        return y

    @staticmethod
    def backward(ctx, grad):
        """gx = scale (g - mean(g) - xhat mean(g xhat)), per sample and channel, written as
        g * scale + (x - mean) * b + c: two passes over the map (b, c per channel), the sums from
        the same accurate reductions as the forward's (on the centred map where it centred)."""
        x, mean, rstd, weight = ctx.saved_tensors
        t = to_tokens(x)
        g = to_tokens(grad.contiguous(memory_format=channels_last_format(x)))
        n = t.shape[1]
        d = t - mean[:, None] if ctx.centred else t
        g_sum = g.sum(1)  # (B, C): bias gradient per sample
        gd_sum = _sum_of_products(g, d)
        if not ctx.centred:
            gd_sum = gd_sum - mean * g_sum  # sum g (x - mean)
        gx_sum = gd_sum * rstd  # (B, C): sum g xhat, the weight gradient per sample
        scale = rstd * weight if weight is not None else rstd
        b = -scale * rstd * gx_sum / n
        c = -scale * g_sum / n
        if not ctx.centred:  # (x - mean) * b = x * b - mean * b
            c = c - mean * b
        gx = torch.addcmul(c[:, None], d, b[:, None]).addcmul_(g, scale[:, None])
        gx = gx.view(x.shape[0], *x.shape[2:], x.shape[1]).movedim(-1, 1)
        gw = gx_sum.sum(0) if weight is not None and ctx.needs_input_grad[1] else None
        gb = g_sum.sum(0) if weight is not None and ctx.needs_input_grad[2] else None
        return gx, gw, gb, None


def channels_last_format(x: torch.Tensor) -> torch.memory_format:
    """channels_last (4D) or channels_last_3d (5D)."""
    return torch.channels_last_3d if x.dim() == 5 else torch.channels_last


def is_channels_last(x: torch.Tensor) -> bool:
    """A 4D/5D map stored channels-last (and not also in the classic layout)."""
    return x.dim() in (4, 5) and x.is_contiguous(memory_format=channels_last_format(x)) and not x.is_contiguous()


def instance_norm_channels_last(x: torch.Tensor, weight: torch.Tensor | None, bias: torch.Tensor | None,
                                eps: float) -> torch.Tensor:
    """Instance norm of a channels-last map; half-precision input runs in float32 (as PyTorch's
    autocast runs norms), float32 and float64 in their own dtype."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        x = x if x.dtype in (torch.float32, torch.float64) else x.float()
        weight, bias = (p if p is None else p.to(x.dtype) for p in (weight, bias))
        return ChannelsLastInstanceNorm.apply(x, weight, bias, eps)
