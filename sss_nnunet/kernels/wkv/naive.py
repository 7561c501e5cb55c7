"""Exact O(T^2 C) Bi-WKV in float64: the reference every backend is tested against.

    y_t = (sum_{i != t} e^{-(|t-i|-1) w + k_i} v_i + e^{u + k_t} v_t)
          / (sum_{i != t} e^{-(|t-i|-1) w + k_i}     + e^{u + k_t})

Shapes: w, u (C,); k, v (B, T, C); returns y (B, T, C) in v's dtype.
Differentiable through autograd. Rows are processed in blocks so memory stays
near ``block_elems`` float64 values per temporary (time is still O(T^2 C)).
"""

from __future__ import annotations

import torch


def bi_wkv_naive(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_elems: int = 2**25
) -> torch.Tensor:
    B, T, C = k.shape
    w64, u64, k64, v64 = (x.to(torch.float64) for x in (w, u, k, v))
    idx = torch.arange(T, device=k.device)
    rows = max(1, block_elems // max(1, B * T * C))
    out = []
    for t0 in range(0, T, rows):
        t = idx[t0 : t0 + rows]
        dist = (t[:, None] - idx[None, :]).abs().to(torch.float64)  # (R, T)
        logits = -(dist - 1)[None, :, :, None] * w64 + k64[:, None, :, :]  # (B, R, T, C)
        diag = (t[:, None] == idx[None, :])[None, :, :, None]
        logits = torch.where(diag, u64 + k64[:, None, :, :], logits)
        weights = torch.softmax(logits, dim=2)  # max-trick normalisation over i
        out.append((weights * v64[:, None, :, :]).sum(dim=2))
    return torch.cat(out, dim=1).to(v.dtype)
