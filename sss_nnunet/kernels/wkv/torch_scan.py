"""O(T) Bi-WKV in pure PyTorch: a chunked, log-space scan (CPU default, GPU fallback).

The building block is the *decayed exclusive prefix sum* (and its mirror, the suffix sum)

    S_t  = sum_{i<t} exp(-(t-1-i) w + x_i) V_i
    S'_t = sum_{i<t} (t-1-i) exp(-(t-1-i) w + x_i) V_i      (distance-weighted, for dL/dw)

kept as ``exp(p_t) * P_t`` with a per-position log scale ``p_t`` (the max trick), so it
neither overflows nor underflows for any sign and size of ``w`` or ``x``.

Algorithm: view T as N chunks of L ~ sqrt(T) tokens, (B, N, L, C). All chunks are scanned
at once, token by token, with the max-trick recurrence (a Python loop of L steps over
(B, N, C) slices, writing each state straight into its output slot). The state entering
each chunk comes from the chunk summaries, which obey the same recurrence one level up
(decay ``L*w``, one token per chunk), so the function calls itself on them. Work and memory
are O(T C); the loop runs about 2 sqrt(T) steps in all. Inputs of any float dtype
accumulate in float32 (float64 stays float64). Every op is deterministic.
"""

from __future__ import annotations

import math

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


def padded_len(T: int) -> int:
    L = chunk_len(T)
    return -(-T // L) * L


def _scan_chunks(
    x: torch.Tensor, V: torch.Tensor, w: torch.Tensor, need_dist: bool, reverse: bool
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Max-trick scan of every chunk at once, each from an empty state.

    x: (B, N, L, C), V: (B, N, L, C, K), w: (C,). Returns the exclusive per-position states
    [p, P(, Pd)] of shapes (B, N, L, C(, K)) and the states after each chunk's last token in
    scan order [p, P(, Pd)] of shapes (B, N, C(, K)) (the chunk summaries).
    """
    B, N, L, C = x.shape
    out = [torch.empty_like(x), torch.empty_like(V)] + ([torch.empty_like(V)] if need_dist else [])
    last = [x.new_empty(B, N, C), V.new_empty(B, N, C, V.shape[-1])]
    order = range(L - 1, -1, -1) if reverse else range(L)
    out[0][:, :, order[0]].fill_(NEG)
    for z in out[1:]:
        z[:, :, order[0]].zero_()
    decay = x.new_empty(B, N, C)
    fresh = torch.empty_like(decay)
    if need_dist:  # running distance-weighted sum and its Kahan compensation
        last.append(torch.empty_like(last[1]))
        run, comp, tmp = (torch.zeros_like(last[1]) for _ in range(3))
    for j, t in enumerate(order):
        cur = [z[:, :, t] for z in out]
        nxt = [z[:, :, order[j + 1]] for z in out] if j + 1 < L else last
        xt = x[:, :, t]
        torch.sub(cur[0], w, out=decay)
        torch.maximum(decay, xt, out=nxt[0])  # q = max(p - w, x_t)
        _exp_(decay.sub_(nxt[0]))  # e^{p - w - q}
        _exp_(torch.sub(xt, nxt[0], out=fresh))  # e^{x_t - q}
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
        torch.mul(cur[1], d, out=nxt[1]).addcmul_(f, V[:, :, t])
    return out, last


def _prefix(
    x: torch.Tensor, V: torch.Tensor, w: torch.Tensor, need_dist: bool, reverse: bool
) -> list[torch.Tensor]:
    """``decayed_prefix`` for T already a multiple of ``chunk_len(T)`` (see there)."""
    B, T, C = x.shape
    K = V.shape[-1]
    L = chunk_len(T)
    N = T // L
    local, last = _scan_chunks(x.view(B, N, L, C), V.view(B, N, L, C, K), w, need_dist, reverse)
    if N > 1:
        # State entering each chunk: the same recurrence one level up (decay L*w per chunk).
        carry = decayed_prefix(last[0], torch.cat(last[1:], -1), w * L, need_dist, reverse)
        pos = torch.arange(L, dtype=x.dtype, device=x.device)
        offset = (L - 1 - pos) if reverse else pos  # tokens between position and chunk edge
        c_logit = carry[0][:, :, None] - offset[:, None] * w  # (B, N, L, C)
        p = torch.maximum(local[0], c_logit)
        s_local = _exp_(local[0].sub_(p))[..., None]
        s_carry = _exp_(c_logit.sub_(p))[..., None]
        carry_P = carry[1][:, :, None, :, :K]
        local[1].mul_(s_local).addcmul_(s_carry, carry_P)
        if need_dist:
            # distance from a carried token = its distance to the chunk edge + offset
            carry_d = (L * carry[2][:, :, None, :, :K] + carry[1][:, :, None, :, K:]).expand_as(local[2])
            carry_d = carry_d.addcmul(offset[:, None, None], carry_P)
            local[2].mul_(s_local).addcmul_(s_carry, carry_d)
        local[0] = p
    return [z.view(B, T, *z.shape[3:]) for z in local]


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
    T = x.shape[1]
    Tp = padded_len(T)
    if Tp == T:
        return _prefix(x, V, w, need_dist, reverse)
    # Padding tokens carry zero value; their weight never matters.
    x = torch.nn.functional.pad(x, (0, 0, 0, Tp - T), value=NEG)
    V = torch.nn.functional.pad(V, (0, 0, 0, 0, 0, Tp - T))
    return [z[:, :T] for z in _prefix(x, V, w, need_dist, reverse)]


def _padded(
    keys: torch.Tensor, values: list[torch.Tensor], dt: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keys (B, Tp, C) and stacked values (B, Tp, C, K) in ``dt``, padded to ``padded_len(T)``."""
    B, T, C = keys.shape
    Tp = padded_len(T)
    x = keys.new_full((B, Tp, C), NEG, dtype=dt)
    x[:, :T] = keys
    V = keys.new_zeros((B, Tp, C, len(values)), dtype=dt)
    for i, val in enumerate(values):
        V[:, :T, :, i] = val
    return x, V


class Shifts:
    """Sign-aware log offsets that keep every log scale O(|k|) for any w (see ``bi_wkv_forward``).

    With w = w+ - beta (w+ = max(w, 0), beta = max(-w, 0)) and M_t = max(t, T-1-t), all (T, C):
      phi_f = beta t,  phi_r = beta (T-1-t)                       key shifts, left / right scans
      lam_f = -beta max(0, T-1-2t),  lam_r = -beta max(0, 2t-T+1)  weights of the two scans
      diag = beta (M_t - 1)                                       shift of the token's own term
    """

    def __init__(self, w: torch.Tensor, T: int, dt: torch.dtype):
        w = w.to(dt)
        self.decay = w.clamp_min(0)
        beta = (-w).clamp_min(0)
        t = torch.arange(T, dtype=dt, device=w.device)[:, None]
        rev = (T - 1) - t
        self.phi_f, self.phi_r = beta * t, beta * rev
        self.lam_f = -beta * (rev - t).clamp_min(0)
        self.lam_r = -beta * (t - rev).clamp_min(0)
        self.diag = beta * (torch.maximum(t, rev) - 1)


def _scans(
    keys: list[torch.Tensor], values: list[torch.Tensor], sh: Shifts, need_dist: bool = False
) -> list[list[torch.Tensor]]:
    """Left scan with keys[0] and right scan with keys[1], same values, decay w+.

    Each is [p, P(, Pd)] cropped to T rows (see ``decayed_prefix``)."""
    T = keys[0].shape[1]
    out = []
    for key, reverse in zip(keys, (False, True)):
        x, V = _padded(key, values, key.dtype)
        out.append([z[:, :T] for z in _prefix(x, V, sh.decay, need_dist, reverse)])
    return out


def _value_scans(
    k: torch.Tensor, v: torch.Tensor, sh: Shifts, need_dist: bool = False
) -> list[list[torch.Tensor]]:
    """A~, B~ (left) and C~, D~ (right): keys k - phi, values (v, 1)."""
    one = torch.ones((), dtype=v.dtype, device=v.device)
    return _scans([k - sh.phi_f, k - sh.phi_r], [v, one], sh, need_dist)


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
    T = k.shape[1]
    kf, vf = k.to(dt), v.to(dt)
    sh = Shifts(w, T, dt)
    (pf, Pf), (pr, Pr) = _value_scans(kf, vf, sh)
    af, ar = pf + sh.lam_f, pr + sh.lam_r
    diag = u.to(dt) + kf - sh.diag
    m = torch.maximum(torch.maximum(af, ar), diag)
    sf, sr = _exp_(af - m), _exp_(ar - m)
    e_diag = _exp_(diag - m)
    den = sf * Pf[..., 1] + sr * Pr[..., 1] + e_diag
    num = (sf * Pf[..., 0]).addcmul_(sr, Pr[..., 0]).addcmul_(e_diag, vf)
    y = num.div_(den)
    y_hi = y if v.dtype in (torch.float16, torch.bfloat16) else y.new_empty(0)
    return y.to(v.dtype), den.log_().add_(m), y_hi


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
    kf, vf = k.to(dt), v.to(dt)
    yf, g = y.to(dt), gy.to(dt)
    sh = Shifts(w, logD.shape[1], dt)
    g_ed = _exp_(u.to(dt) + kf - sh.diag - logD).mul_(g)
    g_ed_vy = g_ed * (vf - yf)

    s_alpha, s_beta = g_ed.clone(), torch.zeros_like(g_ed)
    grad_scans = _scans([sh.lam_r - logD, sh.lam_f - logD], [g, g * yf], sh)
    for (q, Q), phi in zip(grad_scans, (sh.phi_r, sh.phi_f)):
        s = _exp_(q + kf - phi)[..., None] * Q  # exponent <= ~log T: no overflow
        s_alpha += s[..., 0]
        s_beta += s[..., 1]
    dv = s_alpha  # S[g] + g ed
    dk = (vf * (s_alpha - g_ed)).sub_(s_beta).add_(g_ed_vy)

    dw = torch.zeros_like(sh.decay)
    for (p, _, Pd), lam in zip(_value_scans(kf, vf, sh, need_dist=True), (sh.lam_f, sh.lam_r)):
        weight = _exp_(p + lam - logD).mul_(g)
        dw -= (weight * (Pd[..., 0] - yf * Pd[..., 1])).sum((0, 1))
    du = g_ed_vy.sum((0, 1))
    return dw.to(w.dtype), du.to(u.dtype), dk.to(k.dtype), dv.to(v.dtype)
