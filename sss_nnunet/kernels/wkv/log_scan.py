"""Bi-WKV in plain tensor ops that ONNX has (the ``onnx`` backend, used while exporting).

The default ``torch`` backend is a custom op whose scan writes into slices of preallocated
buffers, token by token: no ONNX exporter can turn that into standard operators. This file
computes the same function with ops every ONNX runtime knows (Slice/Concat, Max, Sub, Exp,
Mul, Add, Div): a Hillis-Steele prefix scan in log space, ``ceil(log2 T)`` doubling steps,
each over the whole (B, T, C) sequence. Work O(T log T C), memory O(T C), no data-dependent
control flow, so ``torch.onnx.export`` traces it into a fixed graph of ~12 nodes per step.

The decayed inclusive prefix sum  S_t = sum_{i<=t} e^{-(t-i) w + x_i} V_i  is kept as
``exp(p_t) P_t`` with a per-position log scale ``p_t`` (the max trick), and each doubling step
combines position t with position t - s (s = 1, 2, 4, ...):

    q = max(p_t, p_{t-s} - s w);  P_t <- P_t e^{p_t - q} + P_{t-s} e^{p_{t-s} - s w - q};  p_t <- q

so nothing overflows or underflows that matters, for any sign and size of w and k. As in
``torch_scan``, w = w+ - beta is split by sign and the scans run with the decay w+ >= 0 on
keys shifted by beta times the distance to the sequence end (``torch_scan.Shifts``), which
keeps every log scale that matters within a few hundred of zero in float32.

Inference only in practice (autograd works, it is plain ops, but the ``torch`` backend has the
fast analytic backward). Shapes: w, u (C,); k, v (B, T, C) -> y (B, T, C) in v's dtype;
float16/bfloat16 inputs accumulate in float32, float64 stays float64.
"""

from __future__ import annotations

import torch

NEG = -1.0e30  # log of an empty sum; finite so that NEG - NEG stays 0, never NaN


def _shift(x: torch.Tensor, s: int, fill: float, reverse: bool) -> torch.Tensor:
    """x moved s positions along dim 1 (towards the end, or the start if ``reverse``),
    ``fill`` in the s positions left empty. Exports as Slice + Concat."""
    T = x.shape[1]
    pad = x.new_full((x.shape[0], min(s, T), *x.shape[2:]), fill)
    if s >= T:
        return pad
    return torch.cat([x[:, s:], pad], 1) if reverse else torch.cat([pad, x[:, : T - s]], 1)


def decayed_scan(
    x: torch.Tensor, V: torch.Tensor, w: torch.Tensor, reverse: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exclusive decayed prefix (or, ``reverse``, suffix) sums in log scale.

    Args:
        x: (B, T, C) log weights; V: (B, T, C, K) values; w: (C,) decay per step (>= 0 keeps
            the log scales small; any sign is exact).
    Returns:
        p (B, T, C), P (B, T, C, K) with ``exp(p_t) P_t = sum_{i<t} e^{-(t-1-i) w + x_i} V_i``
        (``i > t`` and distance i-t-1 if ``reverse``); p = ``NEG`` where the sum is empty.
    """
    T = x.shape[1]
    p, P = x, V
    s = 1
    while s < T:
        p_prev = _shift(p, s, NEG, reverse) - s * w
        P_prev = _shift(P, s, 0.0, reverse)
        q = torch.maximum(p, p_prev)
        P = P * torch.exp(p - q)[..., None] + P_prev * torch.exp(p_prev - q)[..., None]
        p = q
        s *= 2
    # exclusive: the state one token back, decayed by nothing more (distance t-1-i)
    return _shift(p, 1, NEG, reverse), _shift(P, 1, 0.0, reverse)


def bi_wkv_log_scan(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Bi-WKV (see ``naive.bi_wkv_naive`` for the definition): y (B, T, C) in v's dtype."""
    dt = torch.float64 if torch.float64 in (w.dtype, u.dtype, k.dtype, v.dtype) else torch.float32
    T, out_dtype = k.shape[1], v.dtype
    w, u, k, v = (z.to(dt) for z in (w, u, k, v))
    decay, beta = w.clamp_min(0), (-w).clamp_min(0)
    t = torch.arange(T, dtype=dt, device=k.device)[:, None]  # (T, 1)
    rev = (T - 1) - t
    values = torch.stack([v, torch.ones_like(v)], -1)  # (B, T, C, 2): numerator and denominator
    pf, Pf = decayed_scan(k - beta * t, values, decay)
    pr, Pr = decayed_scan(k - beta * rev, values, decay, reverse=True)
    af = pf - beta * (rev - t).clamp_min(0)  # the weights lam_f, lam_r of torch_scan.Shifts
    ar = pr - beta * (t - rev).clamp_min(0)
    diag = k + u - beta * (torch.maximum(t, rev) - 1)
    m = torch.maximum(torch.maximum(af, ar), diag)
    sf, sr, sd = torch.exp(af - m), torch.exp(ar - m), torch.exp(diag - m)
    num = sf * Pf[..., 0] + sr * Pr[..., 0] + sd * v
    den = sf * Pf[..., 1] + sr * Pr[..., 1] + sd
    return (num / den).to(out_dtype)
