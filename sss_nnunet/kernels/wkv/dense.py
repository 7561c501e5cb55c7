"""O(T^2 C) Bi-WKV as one batched matrix product: the CPU choice for short sequences (local windows).

    y_t = sum_i P[t, i] e^{k_i} v_i / sum_i P[t, i] e^{k_i},
    P[t, i] = e^{-(|t-i|-1) w}  (i != t),  e^{u}  (i = t)

Per channel, P is a T x T matrix independent of the data, so numerators and denominators of all
B sequences are ONE batched matmul over channels: (C, T, T) @ (C, T, 2B). Where T is small (a
local window of <= 64 tokens) that is a few dense GEMMs instead of the scan's ~2 sqrt(T) steps of
small element-wise ops per direction (``torch_scan``).

Stable by two shifts that cancel in the ratio: k minus its max over the sequence (per sequence
and channel) and each row of log P minus its max, so every factor lies in (0, 1]. A denominator
then holds a term >= e^{-spread} (spread: the range of log P's entries), so it cannot underflow
while ``applies`` holds (spread below ``MAX_SPREAD``); otherwise the caller runs the scan.
Gradients come from plain autograd (the shifts are detached: the ratio does not depend on them).
Shapes: w, u (C,); k, v (B, T, C) -> y (B, T, C) in v's dtype; float32 accumulation (float64 stays).
"""

from __future__ import annotations

import torch

MAX_T = 128  # longest sequence taken (O(T^2) work; the scan is O(T))
MAX_SPREAD = {torch.float32: 60.0, torch.float64: 600.0}


def _compute_dtype(*xs: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32


def spread(w: torch.Tensor, u: torch.Tensor, T: int) -> float:
    """The largest range of log P over channels: entries are u and -j w for j = 0 .. T-2."""
    w, u = w.detach().double(), u.detach().double()
    far = -(T - 2) * w if T > 1 else torch.zeros_like(w)
    hi = torch.maximum(torch.maximum(u, far), torch.zeros_like(w))
    lo = torch.minimum(torch.minimum(u, far), torch.zeros_like(w))
    return float((hi - lo).max()) if w.numel() else 0.0


def applies(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor) -> bool:
    """Whether ``bi_wkv_dense`` is exact to float precision here (short T, bounded spread)."""
    T = k.shape[1]
    return T <= MAX_T and spread(w, u, T) < MAX_SPREAD[_compute_dtype(w, u, k)]


def log_weights(w: torch.Tensor, u: torch.Tensor, T: int) -> torch.Tensor:
    """log P: (C, T, T), -(|t-i|-1) w off the diagonal, u on it."""
    idx = torch.arange(T, device=w.device)
    dist = (idx[:, None] - idx[None, :]).abs().to(w.dtype)
    logp = -(dist - 1)[None] * w[:, None, None]
    return torch.where((dist == 0)[None], u[:, None, None], logp)


def bi_wkv_dense(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bi-WKV of (B, T, C) keys and values (see the module docstring); differentiable."""
    B, T, C = k.shape
    dt = _compute_dtype(w, u, k, v)
    w, u, k32, v32 = (x.to(dt) for x in (w, u, k, v))
    logp = log_weights(w, u, T)
    p = torch.exp(logp - logp.detach().amax(-1, keepdim=True))  # (C, T, T), rows max 1
    e = torch.exp(k32 - k32.detach().amax(1, keepdim=True))  # (B, T, C), max 1 per sequence
    # channel-major operand (C, T, 2B), built by one transposing copy (bmm would copy per channel)
    x = torch.cat([e * v32, e], 0).permute(2, 1, 0).contiguous()
    y = torch.bmm(p, x)  # (C, T, 2B): numerators, then denominators
    return (y[..., :B] / y[..., B:]).permute(2, 1, 0).to(v.dtype).contiguous()
