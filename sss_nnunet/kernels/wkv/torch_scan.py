"""O(T) Bi-WKV in pure PyTorch: a chunked, log-space scan (CPU default, GPU fallback).

The building block is the *decayed exclusive prefix sum* (and its mirror, the suffix sum)

    S_t  = sum_{i<t} exp(-(t-1-i) w + x_i) V_i
    S'_t = sum_{i<t} (t-1-i) exp(-(t-1-i) w + x_i) V_i      (distance-weighted, for dL/dw)

kept as ``exp(p_t) * P_t`` with a per-position log scale ``p_t`` (the max trick), so it
neither overflows nor underflows for any sign and size of ``w`` or ``x``.

Algorithm: view T as N chunks of L ~ sqrt(T) tokens. All chunks are scanned at once, token
by token, with the max-trick recurrence: a Python loop of L steps, each over a (B, N, C)
block. The state entering each chunk comes from the chunk summaries, which obey the same
recurrence one level up (decay ``L*w``, one token per chunk), so ``decayed_prefix`` calls
itself on them. Work and memory are O(T C); the loop runs about 2 sqrt(T) steps in all.

Layout: everything runs in the *scan layout* (L, B, N, C[, K]) (token t = n L + l sits at
[l, :, n]), so every step reads and writes one contiguous block; inputs are converted once
and only the results are converted back. Inputs of any float dtype accumulate in float32
(float64 stays float64). Every op is deterministic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

NEG = -1.0e30  # log of an empty sum; finite so that NEG - NEG stays 0, never NaN
MIN_CHUNK = 16

# exp() is 40-700x slower where its result is subnormal or zero. Every exponent below is a
# difference from a running max (<= 0), so flooring it changes results by < 1e-35 relative.
_EXP_FLOOR = {torch.float32: -80.0, torch.float64: -700.0}


def _exp_(x: torch.Tensor) -> torch.Tensor:
    """In-place floored exp (see ``_EXP_FLOOR``)."""
    return x.clamp_min_(_EXP_FLOOR[x.dtype]).exp_()


def _compute_dtype(*xs: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32


def chunk_len(T: int) -> int:
    """About sqrt(T), so the two levels of the scan take similar numbers of steps."""
    return T if T <= MIN_CHUNK else math.isqrt(T - 1) + 1


@dataclass(frozen=True)
class Layout:
    """Conversion between (B, T, C[, K]) and the scan layout (L, B, N, C[, K]); T <= N * L."""

    T: int

    @property
    def L(self) -> int:
        return chunk_len(self.T)

    @property
    def N(self) -> int:
        return -(-self.T // self.L)

    def to_scan(self, z: torch.Tensor, fill: float, dtype: torch.dtype) -> torch.Tensor:
        """(B, T, C[, K]) -> (L, B, N, C[, K]) in ``dtype``; positions past T hold ``fill``."""
        B, T, *rest = z.shape
        L, N = self.L, self.N
        out = z.new_empty((L, B, N, *rest), dtype=dtype)
        view = out.movedim(0, 2)  # (B, N, L, C[, K]) view of the output
        full = (N - 1) * L if T < N * L else T
        view[:, : full // L].copy_(z[:, :full].reshape(B, full // L, L, *rest))
        if full < T or T < N * L:
            rem = T - full
            view[:, N - 1, :rem].copy_(z[:, full:])
            view[:, N - 1, rem:].fill_(fill)
        return out

    def from_scan(self, zs: torch.Tensor) -> torch.Tensor:
        """(L, B, N, C[, K]) -> a contiguous (B, T, C[, K]) (one copy).

        Always a fresh contiguous tensor, whatever T, N and L: the custom ops' fake
        implementations promise contiguous outputs, and ``torch.compile`` checks it.
        """
        L, B, N, *rest = zs.shape
        T = self.T
        out = zs.new_empty((B, T, *rest))
        full = (N - 1) * L if T < N * L else T  # tokens in whole chunks
        out[:, :full].view(B, full // L, L, *rest).copy_(zs[:, :, : full // L].movedim(0, 2))
        if full < T:
            out[:, full:].copy_(zs[: T - full, :, N - 1].movedim(0, 1))
        return out


def _scan_chunks(
    x: torch.Tensor, V: torch.Tensor, w: torch.Tensor, need_dist: bool, reverse: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Max-trick scan of every chunk at once, each from an empty state.

    x: (L, B, N, C), V: (L, B, N, C, K), w: (C,). Returns the exclusive per-position states
    [p, P(, Pd)] of shapes (L, B, N, C(, K)) and the states after each chunk's last token in
    scan order [p, P(, Pd)] of shapes (B, N, C(, K)) (the chunk summaries).
    """
    L = x.shape[0]
    out = [torch.empty_like(x), torch.empty_like(V)] + ([torch.empty_like(V)] if need_dist else [])
    last = [torch.empty_like(x[0]), torch.empty_like(V[0])]
    order = range(L - 1, -1, -1) if reverse else range(L)
    out[0][order[0]].fill_(NEG)
    for z in out[1:]:
        z[order[0]].zero_()
    decay = torch.empty_like(x[0])
    fresh = torch.empty_like(decay)
    if need_dist:  # running distance-weighted sum and its Kahan compensation
        last.append(torch.empty_like(last[1]))
        run, comp, tmp = (torch.zeros_like(last[1]) for _ in range(3))
    for j, t in enumerate(order):
        cur = [z[t] for z in out]
        nxt = [z[order[j + 1]] for z in out] if j + 1 < L else last
        torch.sub(cur[0], w, out=decay)
        torch.maximum(decay, x[t], out=nxt[0])  # q = max(p - w, x_t)
        _exp_(decay.sub_(nxt[0]))  # e^{p - w - q}
        _exp_(torch.sub(x[t], nxt[0], out=fresh))  # e^{x_t - q}
        d, f = decay[..., None], fresh[..., None]
        if need_dist:
            # S'_{t+1} = e^{-w} (S'_t + S_t). At w+ = 0 this adds a near-constant into a sum
            # growing with t, so the addition is Kahan-compensated.
            torch.sub(cur[1], comp, out=tmp)
            torch.add(run, tmp, out=nxt[2])
            torch.sub(nxt[2], run, out=comp).sub_(tmp)
            run.copy_(nxt[2]).mul_(d)
            comp.mul_(d)
            nxt[2].copy_(run).sub_(comp)
        torch.mul(cur[1], d, out=nxt[1]).addcmul_(f, V[t])
    return out, last


def scan_prefix(
    xs: torch.Tensor, Vs: torch.Tensor, w: torch.Tensor, need_dist: bool = False, reverse: bool = False
) -> list[torch.Tensor]:
    """``decayed_prefix`` in the scan layout: xs (L, B, N, C), Vs (L, B, N, C, K) -> same layout."""
    L, B, N, C = xs.shape
    K = Vs.shape[-1]
    local, last = _scan_chunks(xs, Vs, w, need_dist, reverse)
    if N > 1:
        # State entering each chunk: the same recurrence one level up (decay L*w per chunk).
        carry = decayed_prefix(last[0], torch.cat(last[1:], -1), w * L, need_dist, reverse)
        pos = torch.arange(L, dtype=xs.dtype, device=xs.device)
        offset = ((L - 1 - pos) if reverse else pos).view(L, 1, 1, 1)  # tokens to the chunk edge
        c_logit = carry[0] - offset * w  # (L, B, N, C)
        p = torch.maximum(local[0], c_logit)
        s_local = _exp_(local[0].sub_(p))[..., None]
        s_carry = _exp_(c_logit.sub_(p))[..., None]
        carry_P = carry[1][..., :K]
        local[1].mul_(s_local).addcmul_(s_carry, carry_P)
        if need_dist:
            # distance from a carried token = its distance to the chunk edge + offset
            carry_d = (L * carry[2][..., :K] + carry[1][..., K:]).addcmul(offset[..., None], carry_P)
            local[2].mul_(s_local).addcmul_(s_carry, carry_d)
        local[0] = p
    return local


def decayed_prefix(
    x: torch.Tensor, V: torch.Tensor, w: torch.Tensor, need_dist: bool = False, reverse: bool = False
) -> list[torch.Tensor]:
    """Exclusive decayed prefix (or, with ``reverse``, suffix) sums, log-scaled.

    Args:
        x: (B, T, C) log weights.
        V: (B, T, C, K) values.
        w: (C,) decay per step (any sign), same dtype as x.
        need_dist: also return the distance-weighted sums (for dL/dw).
        reverse: sum over i > t instead of i < t (distance i-t-1).
    Returns:
        [p, P] or [p, P, Pd]: p (B, T, C) log scale (``NEG`` where the sum is empty),
        P, Pd (B, T, C, K) with ``S_t = exp(p_t) P_t`` and ``S'_t = exp(p_t) Pd_t``.
    """
    lay = Layout(x.shape[1])
    # padding tokens carry zero value; their weight never matters
    out = scan_prefix(lay.to_scan(x, NEG, x.dtype), lay.to_scan(V, 0.0, V.dtype), w, need_dist, reverse)
    return [lay.from_scan(z) for z in out]


class Shifts:
    """Sign-aware log offsets that keep every log scale O(|k|) for any w (see ``bi_wkv_forward``).

    With w = w+ - beta (w+ = max(w, 0), beta = max(-w, 0)) and M_t = max(t, T-1-t), each
    (L, 1, N, C) in the scan layout:
      phi_f = beta t,  phi_r = beta (T-1-t)                       key shifts, left / right scans
      lam_f = -beta max(0, T-1-2t),  lam_r = -beta max(0, 2t-T+1)  weights of the two scans
      diag = beta (M_t - 1)                                       shift of the token's own term
    """

    def __init__(self, w: torch.Tensor, lay: Layout, dt: torch.dtype):
        w = w.to(dt)
        self.decay = w.clamp_min(0)
        beta = (-w).clamp_min(0)
        T = lay.T
        t = torch.arange(lay.N * lay.L, dtype=dt, device=w.device).view(lay.N, lay.L).T[:, None, :, None]
        rev = (T - 1) - t
        self.phi_f, self.phi_r = beta * t, beta * rev
        self.lam_f = -beta * (rev - t).clamp_min(0)
        self.lam_r = -beta * (t - rev).clamp_min(0)
        self.diag = beta * (torch.maximum(t, rev) - 1)


def _two_scans(
    keys: tuple[torch.Tensor, torch.Tensor], Vs: torch.Tensor, sh: Shifts, need_dist: bool = False
) -> list[list[torch.Tensor]]:
    """Left scan with keys[0] and right scan with keys[1], same values, decay w+ (scan layout)."""
    return [scan_prefix(key, Vs, sh.decay, need_dist, reverse) for key, reverse in zip(keys, (False, True))]


def _values(vs: torch.Tensor, ones: torch.Tensor) -> torch.Tensor:
    """(L, B, N, C, 2): values v and 1 (0 on padding) of the value scans A~, B~ / C~, D~."""
    return torch.stack([vs, ones], -1)


def bi_wkv_forward(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns y (B, T, C) in v's dtype, logD (B, T, C) and y_hi.

    Dividing numerator and denominator by e^{beta (M_t - 1)} (see ``Shifts``) gives
        y_t = (e^{lam_f} A~_t + e^{lam_r} C~_t + e^{u + k_t - diag} v_t) / (same with v = 1)
    where A~, C~ are scans with decay w+ >= 0 and keys k - phi: every exponent that matters
    stays within a few hundred of zero, so float32 stays exact for any w and T.
    ``logD`` is the log of that normalised denominator (float32, float64 for float64 input);
    ``y_hi`` is y in float32 when v is float16/bfloat16 (kept for the backward pass), else empty.
    """
    dt = _compute_dtype(w, u, k, v)
    lay = Layout(k.shape[1])
    sh = Shifts(w, lay, dt)
    ks, vs = lay.to_scan(k, NEG, dt), lay.to_scan(v, 0.0, dt)
    ones = lay.to_scan(torch.ones_like(k[..., :1]), 0.0, dt).expand_as(vs)
    (pf, Pf), (pr, Pr) = _two_scans((ks - sh.phi_f, ks - sh.phi_r), _values(vs, ones), sh)
    af, ar = pf.add_(sh.lam_f), pr.add_(sh.lam_r)
    diag = (ks + u.to(dt)).sub_(sh.diag)
    m = torch.maximum(torch.maximum(af, ar), diag)
    sf, sr, e_diag = _exp_(af.sub_(m)), _exp_(ar.sub_(m)), _exp_(diag.sub_(m))
    den = (sf * Pf[..., 1]).addcmul_(sr, Pr[..., 1]).add_(e_diag)
    y = (sf.mul_(Pf[..., 0])).addcmul_(sr, Pr[..., 0]).addcmul_(e_diag, vs).div_(den)
    y = lay.from_scan(y)
    y_hi = y if v.dtype in (torch.float16, torch.bfloat16) else y.new_empty(0, dtype=torch.float32)
    return y.to(v.dtype), lay.from_scan(den.log_().add_(m)), y_hi


def bi_wkv_backward(
    w: torch.Tensor,
    u: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    y: torch.Tensor,
    logD: torch.Tensor,
    gy: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dw, du, dk, dv) from y (y_hi for half inputs) and the normalised logD.

    With ed_t = e^{u+k_t-logD_t} and S[h]_i = e^{k_i} sum_{t != i} e^{-(|t-i|-1) w - logD_t} h_t:
      dv = S[g] + g ed,   dk = v S[g] - S[g y] + g ed (v - y),   du = sum g ed (v - y),
      dw = -sum_t g_t e^{-logD_t} sum_{i != t} (|t-i|-1) e^{-(|t-i|-1) w + k_i} (v_i - y_t).
    In the shifted coordinates of ``bi_wkv_forward``, S[h] over t < i is a left scan with
    key lam_r - logD and factor e^{k_i - phi_r}; over t > i a right scan with key
    lam_f - logD and factor e^{k_i - phi_f}. dw weighs the distance-weighted twins of the
    value scans by e^{lam - logD}.
    """
    dt = logD.dtype
    lay = Layout(k.shape[1])
    sh = Shifts(w, lay, dt)
    ks, vs = lay.to_scan(k, NEG, dt), lay.to_scan(v, 0.0, dt)
    # padding: g = 0 and an infinite denominator, so it has no weight in any scan
    ys, ld, g = lay.to_scan(y, 0.0, dt), lay.to_scan(logD, -NEG, dt), lay.to_scan(gy, 0.0, dt)
    g_ed = _exp_((ks + u.to(dt)).sub_(sh.diag).sub_(ld)).mul_(g)
    g_ed_vy = g_ed * (vs - ys)

    s_alpha, s_beta = g_ed.clone(), torch.zeros_like(g_ed)
    grad_scans = _two_scans((sh.lam_r - ld, sh.lam_f - ld), torch.stack([g, g * ys], -1), sh)
    for (q, Q), phi in zip(grad_scans, (sh.phi_r, sh.phi_f)):
        s = _exp_(q.add_(ks).sub_(phi))[..., None] * Q  # exponent <= ~log T: no overflow
        s_alpha += s[..., 0]
        s_beta += s[..., 1]
    dk = (vs * (s_alpha - g_ed)).sub_(s_beta).add_(g_ed_vy)

    ones = lay.to_scan(torch.ones_like(k[..., :1]), 0.0, dt).expand_as(vs)
    dw = torch.zeros_like(sh.decay)
    value_scans = _two_scans((ks - sh.phi_f, ks - sh.phi_r), _values(vs, ones), sh, need_dist=True)
    for (p, _, Pd), lam in zip(value_scans, (sh.lam_f, sh.lam_r)):
        weight = _exp_(p.add_(lam).sub_(ld)).mul_(g)
        dw -= (weight * (Pd[..., 0] - ys * Pd[..., 1])).sum((0, 1, 2))
    du = g_ed_vy.sum((0, 1, 2))
    dk, dv = lay.from_scan(dk), lay.from_scan(s_alpha)  # dv = S[g] + g ed
    return dw.to(w.dtype), du.to(u.dtype), dk.to(k.dtype), dv.to(v.dtype)
