"""Direction-aware token shift: channel groups take the token one voxel away along +-D, +-H, +-W.

A shift mode gives each axis a *share* of the channels (``axis_shares`` from the weighted scan
orders, or ``qshift_shares``: equal shares, Vision-RWKV's Q-Shift extended to every axis), each
share is split between the + and - direction and turned into a soft channel partition
(``direction_weights``), and ``directional_shift`` moves the channels accordingly, never across a
window border. Everything is differentiable in the shares; ``directional_shift`` recomputes the
shifted copies in backward instead of keeping 2 * dims of them (``_DirectionalShift``).
Maps are channels-last (B, *S, C).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from sss_nnunet import fastpaths
from sss_nnunet.network.windows import border_mask, cached, small_tensor

SHIFT_MODES = ("none", "qshift4", "stage")
Orders = Sequence[tuple[int, ...]]


def shift_directions(dims: int) -> list[tuple[int, int]]:
    """(axis, sign) of the 2 * dims one-voxel shifts: +D, -D, +H, -H, +W, -W (2D: +H .. -W)."""
    return [(a, s) for a in range(dims) for s in (1, -1)]


def axis_shares(orders: Orders, weights: torch.Tensor | None, spatial: Sequence[int], device) -> torch.Tensor:
    """(B or 1, dims) share of the shifted channels per axis for a weighted scan.

    Per order, the axis scanned slowest gets weight dims, the fastest 1 (consecutive tokens
    are neighbours along the fastest axis only; the further apart neighbours lie in the
    sequence, the more the shift must supply them). Shares are averaged with the scan weights
    (B, n_orders) (equal weights if None), set to 0 on axes of size 1 and normalised to sum 1.
    Differentiable in ``weights``.
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


def qshift_shares(spatial: Sequence[int], device) -> torch.Tensor:
    """(1, dims) Vision-RWKV's Q-Shift on a ``dims``-D map: every axis of size > 1 gets an equal
    share (2D: H and W half each, Vision-RWKV's four directions; 3D: D, H and W a third each, the
    six directions; an axis of size 1 has no neighbours and gets none)."""
    live = [float(s > 1) for s in spatial]
    total = max(sum(live), 1.0)
    return cached(("qshift", tuple(live), str(device)), lambda: small_tensor([[v / total for v in live]], device))


qshift4_shares = qshift_shares  # the name of the shift mode ``qshift4`` (kept: checkpoints and tests name it)


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


def _moved(x: torch.Tensor, axis: int, sign: int) -> torch.Tensor:
    """x (B, *S, C) moved one voxel by ``sign`` along spatial ``axis``: out[p] = x[p - sign e], 0 outside."""
    dims = x.dim() - 2
    ax, size = 1 + axis, x.shape[1 + axis]
    src = x.narrow(ax, 0, size - 1) if sign > 0 else x.narrow(ax, 1, size - 1)
    pads = [0, 0] + [0, 0] * (dims - 1 - axis) + ([1, 0] if sign > 0 else [0, 1])
    return F.pad(src, pads)


def _coefficients(x: torch.Tensor, weights: torch.Tensor, window: Sequence[int]):
    """Yield (d, axis, sign, coef (B or 1, *S, C) = border mask * channel weights) per live direction."""
    dims = x.dim() - 2
    C = x.shape[-1]
    for d, (axis, sign) in enumerate(shift_directions(dims)):
        size = x.shape[1 + axis]
        if size == 1:
            continue
        view = [1] * (dims + 2)
        view[1 + axis] = size
        mask = border_mask(size, int(window[axis]), sign, x.device, x.dtype).view(view)
        yield d, axis, sign, mask * weights[:, d].to(x.dtype).view(weights.shape[0], *([1] * dims), C)


def _shift_forward(x: torch.Tensor, weights: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """The reference form: every direction over every channel, one padded copy of x each (traceable
    by torch.compile and the ONNX exporter; the path off the CPU)."""
    out = None
    for _d, axis, sign, coef in _coefficients(x, weights, window):
        shifted = _moved(x, axis, sign)
        out = shifted * coef if out is None else torch.addcmul(out, shifted, coef)
    return torch.zeros_like(x) if out is None else out


def live_channels(weights: torch.Tensor) -> list[tuple[int, int]] | None:
    """Per direction, the channel span [c0, c1) outside which its weights are 0 in every sample.

    ``direction_weights`` gives each direction a contiguous run of channels (its share of C), so the
    shift's value, and its gradient for x, need only that run: about one pass over the map in all
    instead of 2 * dims. (The span is widened by one channel each side; the weights' own gradient is
    computed for every channel.) None (every channel) off the CPU and while traced (torch.compile,
    ONNX / JIT): reading the weights would cost a device sync or break the graph.
    """
    if not fastpaths.enabled(weights):
        return None
    C = weights.shape[-1]
    spans = []
    for row in (weights.detach() != 0).any(0).tolist():  # (2 * dims) rows of C flags
        live = [c for c, on in enumerate(row) if on]
        spans.append((max(live[0] - 1, 0), min(live[-1] + 2, C)) if live else (0, 0))
    return spans


def _slabs(sign: int) -> tuple[int, int]:
    """(start of the source slab, start of the destination slab) of a one-voxel move by ``sign``
    along an axis of n + 1 voxels; both slabs hold n voxels."""
    return (0, 1) if sign > 0 else (1, 0)


def _shift_forward_live(x: torch.Tensor, weights: torch.Tensor, window: Sequence[int],
                        spans: list[tuple[int, int]]) -> torch.Tensor:
    """``_shift_forward`` restricted to each direction's live channels, without padded copies:
    each direction adds its source slab into its destination slab in place (about one pass over x
    in all instead of 2 * dims padded copies and products)."""
    out = torch.zeros_like(x)
    for d, axis, sign, coef in _coefficients(x, weights, window):
        c0, c1 = spans[d]
        if c0 >= c1:
            continue
        ax, n = 1 + axis, x.shape[1 + axis] - 1
        src, dst = _slabs(sign)
        out.narrow(ax, dst, n)[..., c0:c1].addcmul_(x.narrow(ax, src, n)[..., c0:c1],
                                                    coef.narrow(ax, dst, n)[..., c0:c1])
    return out


class _DirectionalShift(torch.autograd.Function):
    """The shift with gradients for x and the channel weights; saves x and the weights only and
    recomputes each shifted copy in backward (plain autograd would keep 2 * dims copies of the map).
    On the CPU, the value and x's gradient touch only each direction's live channels (``live_channels``)."""

    @staticmethod
    def forward(ctx, x, weights, window):
        ctx.save_for_backward(x, weights)
        ctx.window = tuple(int(w) for w in window)
        ctx.spans = live_channels(weights)
        if ctx.spans is None:
            return _shift_forward(x, weights, window)
        return _shift_forward_live(x, weights, window, ctx.spans)

    @staticmethod
    def backward(ctx, grad):
        x, weights = ctx.saved_tensors
        dims = x.dim() - 2
        C = x.shape[-1]
        grad_x = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        grad_w = torch.zeros_like(weights) if ctx.needs_input_grad[1] else None
        spatial_axes = tuple(range(1, dims + 1))
        acc = torch.promote_types(x.dtype, torch.float32)  # at least float32 under autocast
        for d, axis, sign, coef in _coefficients(x, weights, ctx.window):
            ax, n = 1 + axis, x.shape[1 + axis] - 1
            src, dst = _slabs(sign)
            g = grad.narrow(ax, dst, n)  # the gradient where this direction wrote
            c0, c1 = ctx.spans[d] if ctx.spans is not None else (0, C)
            if grad_x is not None and c0 < c1:  # adjoint of the move: grad * coef onto the source slab
                grad_x.narrow(ax, src, n)[..., c0:c1].addcmul_(g[..., c0:c1], coef.narrow(ax, dst, n)[..., c0:c1])
            if grad_w is not None:  # every channel: d out / d weight is not 0 where the weight is
                mask = border_mask(n + 1, ctx.window[axis], sign, x.device, acc).narrow(0, dst, n)
                view = [1] * (dims + 2)
                view[ax] = n
                gw = ((g * x.narrow(ax, src, n)).to(acc) * mask.view(view)).sum(spatial_axes)  # (B, C)
                grad_w[:, d] += (gw.sum(0) if weights.shape[0] == 1 else gw).to(grad_w.dtype)
        return grad_x, grad_w, None


def directional_shift(x: torch.Tensor, weights: torch.Tensor, window: Sequence[int]) -> torch.Tensor:
    """Direction-aware token shift of a channels-last map x (B, *S, C).

    out[p, c] = sum_d weights[b, d, c] * x[p - sign_d e_axis_d, c], where the term is 0 if the
    source lies outside the map or in another window of size ``window`` (voxels per axis).
    weights: (B or 1, 2 * dims, C) (see ``direction_weights``); differentiable in x and weights.
    """
    needs_grad = torch.is_grad_enabled() and (weights.requires_grad or x.requires_grad)
    if needs_grad and not torch.compiler.is_compiling():
        return _DirectionalShift.apply(x, weights, tuple(window))
    # no gradient needed (or traced by torch.compile, which differentiates the plain ops)
    spans = None if needs_grad else live_channels(weights)
    return _shift_forward(x, weights, window) if spans is None else _shift_forward_live(x, weights, window, spans)
