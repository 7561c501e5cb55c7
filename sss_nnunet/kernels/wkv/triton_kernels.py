"""Bi-WKV in Triton: chunked forward and backward kernels (GPU default; CPU via TRITON_INTERPRET=1).

Each program owns ``BLOCK_C`` channels of one batch element and one chunk of ``chunk``
tokens, so a long sequence spreads over many programs (sizes from ``launch_config``). Three
passes per direction of work:

1. summary: scan the chunk from an empty state (left to right and right to left) and
   store the state after its last token;
2. carry: one program per (channel block, batch) walks the chunk summaries and stores the
   state entering every chunk (decay over a chunk of n tokens: ``p -= n w``, merge by max);
3. output: rescan every chunk from its carried state, now writing per-token results.

A sequence that fits one chunk skips passes 1 and 2: the output kernels are compiled with
``CARRY=False`` and start from empty states. Chunks are at least ~sqrt(T)/2 tokens, so the
carry walk (one step per chunk) is never much longer than a chunk's own scan: long sequences
are carried in two levels (tokens within a chunk, chunks within the sequence). Every token
loop is a ``tl.range`` with ``num_stages``: the loads of the next tokens do not depend on the
running state, so Triton's software pipeliner issues them ahead (cp.async for 4-byte loads).

States are ``(a, b, p)`` with value ``a * e^p`` (max trick); ``NEG`` is the log of an empty
sum. The maths is that of ``torch_scan`` (same sign-aware shifts, see ``torch_scan.Shifts``):
scans decay by w+ = max(w, 0) with keys k - beta t (left) or k - beta (T-1-t) (right), so
every log scale stays O(|k|) for any w. The backward pass rescans the value states with
their distance-weighted twins (for dw) and the gradient sums with key ``lam - logD``; dw and
du are reduced per program into ``(B, n_chunks, C)`` partials and summed by the caller:
deterministic, no atomics. Shapes: k, v, g (B, T, C) with any strides; w, u (C,) float32.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

DEFAULT_BLOCK_C = 32  # one warp, one channel per thread
MIN_CHUNK = 64  # float32 dw at extreme decays: 2.4e-3 rel. error with 16-token chunks, 6e-4 with 64
SPLIT_MIN_T = 64  # shorter sequences are one chunk: two extra launches cost more than they save
# Programs a call should launch: each is one warp running a latency-bound sequential scan, so
# an SM wants many resident (up to 64 warps on sm_80/sm_90); 16 per SM keeps every SM busy
# with room to hide memory latency. Used when the device is unknown (CPU / interpreter).
PROGRAMS_PER_SM = 16
DEFAULT_SMS = 132  # H100 SXM (A100: 108)
DEFAULT_NUM_STAGES = 3  # software-pipelining depth of the token loops (tl.range num_stages)
FWD_STATES = 6  # (a, b, p) left-to-right, then right-to-left
BWD_STATES = 16  # per direction: (alpha, beta, q) + (a, b, a_d, b_d, p)
# globals read inside kernels must be constexpr
NEG = tl.constexpr(-1.0e30)
N_FWD_STATE = tl.constexpr(FWD_STATES)
N_BWD_STATE = tl.constexpr(BWD_STATES)


@triton.jit
def _step(p, a, b, w, x, va, vb):
    """Add one token (log weight x, values va, vb) to a state decayed by one step."""
    q = tl.maximum(p - w, x)
    e_old = tl.exp(p - w - q)
    e_new = tl.exp(x - q)
    return q, e_old * a + e_new * va, e_old * b + e_new * vb, e_old


@triton.jit
def _dist_step(ad, ad_c, a, e_old):
    """Distance-weighted twin after one step, S'_{t+1} = e^{-w} (S'_t + S_t), with Kahan
    compensation ad_c: at w+ = 0 it adds a near-constant into a sum that grows with t."""
    y = a - ad_c
    s = ad + y
    ad_c = (s - ad) - y
    return e_old * s, e_old * ad_c


@triton.jit
def _merge(p1, a1, b1, p2, a2, b2):
    """Sum of two states (p1, a1, b1) and (p2, a2, b2)."""
    p = tl.maximum(p1, p2)
    s1 = tl.exp(p1 - p)
    s2 = tl.exp(p2 - p)
    return p, a1 * s1 + a2 * s2, b1 * s1 + b2 * s2, s1, s2


@triton.jit
def _token(t, reverse, start, n_tok):
    return tl.where(reverse, start + n_tok - 1 - t, start + t)


@triton.jit
def _shifts(t, T, beta):
    """phi_f, phi_r, lam_f, lam_r, diag of ``torch_scan.Shifts`` at token t (vectors over C)."""
    tf = t.to(tl.float32)
    rf = (T - 1 - t).to(tl.float32)
    return (
        beta * tf,
        beta * rf,
        -beta * tl.maximum(rf - tf, 0.0),
        -beta * tl.maximum(tf - rf, 0.0),
        beta * (tl.maximum(tf, rf) - 1.0),
    )


@triton.jit
def _chunk_program(n_chunks, C, BLOCK_C: tl.constexpr):
    """(channel block, batch, chunk) of a 1-D grid of n_chunks * cdiv(C, BLOCK_C) * B programs
    (1-D: CUDA allows 2^31 - 1 programs on x, only 65535 on y and z)."""
    pid = tl.program_id(0)
    n = pid % n_chunks
    rest = pid // n_chunks
    n_cb = tl.cdiv(C, BLOCK_C)
    return rest % n_cb, (rest // n_cb).to(tl.int64), n


@triton.jit
def _load(ptr, bi, t, c, s_b, s_t, s_c, mask):
    """Token t of batch bi, channels c, of a strided (B, T, C) tensor, as float32."""
    return tl.load(ptr + bi * s_b + t * s_t + c * s_c, mask=mask, other=0.0).to(tl.float32)


@triton.jit
def _signs(w_ptr, c, mask):
    """w+ = max(w, 0) (the decay every scan uses) and beta = max(-w, 0)."""
    w = tl.load(w_ptr + c, mask=mask, other=0.0)
    return tl.maximum(w, 0.0), tl.maximum(-w, 0.0)


# ----------------------------------------------------------------------------- forward
@triton.jit
def wkv_fwd_summary_kernel(
    k_ptr, v_ptr, w_ptr, summ_ptr,
    T, C, n_chunks, chunk,
    s_kb, s_kt, s_kc, s_vb, s_vt, s_vc,
    BLOCK_C: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid_c, bi, n = _chunk_program(n_chunks, C, BLOCK_C)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = c < C
    wp, beta = _signs(w_ptr, c, mask)
    start = n * chunk
    n_tok = tl.minimum(chunk, T - start)
    base = summ_ptr + (bi * n_chunks + n) * N_FWD_STATE * C + c
    for direction in tl.static_range(2):  # 0: left to right, 1: right to left
        p = tl.full([BLOCK_C], NEG, tl.float32)
        a = tl.zeros([BLOCK_C], tl.float32)
        b = tl.zeros([BLOCK_C], tl.float32)
        for i in tl.range(0, n_tok, num_stages=NUM_STAGES):
            t = _token(i, direction == 1, start, n_tok)
            phi_f, phi_r, _, _, _ = _shifts(t, T, beta)
            t = t.to(tl.int64)
            x = _load(k_ptr, bi, t, c, s_kb, s_kt, s_kc, mask)
            v = _load(v_ptr, bi, t, c, s_vb, s_vt, s_vc, mask)
            x = x - tl.where(direction == 1, phi_r, phi_f)
            p, a, b, _ = _step(p, a, b, wp, x, v, 1.0)
        tl.store(base + (3 * direction + 0) * C, a, mask=mask)
        tl.store(base + (3 * direction + 1) * C, b, mask=mask)
        tl.store(base + (3 * direction + 2) * C, p, mask=mask)


@triton.jit
def wkv_fwd_carry_kernel(
    summ_ptr, carry_ptr, w_ptr,
    T, C, n_chunks, chunk,
    BLOCK_C: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid_c, bi, _ = _chunk_program(1, C, BLOCK_C)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = c < C
    wp, _ = _signs(w_ptr, c, mask)
    for direction in tl.static_range(2):
        p = tl.full([BLOCK_C], NEG, tl.float32)
        a = tl.zeros([BLOCK_C], tl.float32)
        b = tl.zeros([BLOCK_C], tl.float32)
        for i in tl.range(0, n_chunks, num_stages=NUM_STAGES):
            n = tl.where(direction == 1, n_chunks - 1 - i, i)
            off = (bi * n_chunks + n) * N_FWD_STATE * C + c + 3 * direction * C
            tl.store(carry_ptr + off, a, mask=mask)
            tl.store(carry_ptr + off + C, b, mask=mask)
            tl.store(carry_ptr + off + 2 * C, p, mask=mask)
            sa = tl.load(summ_ptr + off, mask=mask, other=0.0)
            sb = tl.load(summ_ptr + off + C, mask=mask, other=0.0)
            sp = tl.load(summ_ptr + off + 2 * C, mask=mask, other=NEG)
            n_tok = tl.minimum(chunk, T - n * chunk)
            p, a, b, _, _ = _merge(p - wp * n_tok, a, b, sp, sa, sb)


@triton.jit
def wkv_fwd_output_kernel(
    k_ptr, v_ptr, w_ptr, u_ptr, carry_ptr, y_ptr, logd_ptr, yr_ptr,
    T, C, n_chunks, chunk,
    s_kb, s_kt, s_kc, s_vb, s_vt, s_vc,
    BLOCK_C: tl.constexpr, NUM_STAGES: tl.constexpr, CARRY: tl.constexpr,
):
    """y (B, T, C) in its own dtype; logd, yr (B, T, C) float32. yr first parks the right
    scan's C~/D~ of each token, then receives the float32 y (the caller's y_hi)."""
    pid_c, bi, n = _chunk_program(n_chunks, C, BLOCK_C)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = c < C
    wp, beta = _signs(w_ptr, c, mask)
    u = tl.load(u_ptr + c, mask=mask, other=0.0)
    start = n * chunk
    n_tok = tl.minimum(chunk, T - start)
    cbase = carry_ptr + (bi * n_chunks + n) * N_FWD_STATE * C + c
    cmask = mask & CARRY  # one chunk (CARRY=False): no carry pass, start from empty states
    # right to left: park C~_t / D~_t and log D~_t of every token
    a = tl.load(cbase + 3 * C, mask=cmask, other=0.0)
    b = tl.load(cbase + 4 * C, mask=cmask, other=0.0)
    p = tl.load(cbase + 5 * C, mask=cmask, other=NEG)
    for i in tl.range(0, n_tok, num_stages=NUM_STAGES):
        t = start + n_tok - 1 - i
        _, phi_r, _, _, _ = _shifts(t, T, beta)
        t = t.to(tl.int64)
        o = (bi * T + t) * C + c
        has = b > 0.0
        b_safe = tl.where(has, b, 1.0)
        tl.store(yr_ptr + o, tl.where(has, a / b_safe, 0.0), mask=mask)
        tl.store(logd_ptr + o, tl.where(has, p + tl.log(b_safe), NEG), mask=mask)
        x = _load(k_ptr, bi, t, c, s_kb, s_kt, s_kc, mask)
        v = _load(v_ptr, bi, t, c, s_vb, s_vt, s_vc, mask)
        p, a, b, _ = _step(p, a, b, wp, x - phi_r, v, 1.0)
    # left to right: combine left scan, parked right scan and the token's own bonus term
    a = tl.load(cbase, mask=cmask, other=0.0)
    b = tl.load(cbase + C, mask=cmask, other=0.0)
    p = tl.load(cbase + 2 * C, mask=cmask, other=NEG)
    for i in tl.range(0, n_tok, num_stages=NUM_STAGES):
        t = start + i
        phi_f, _, lam_f, lam_r, diag = _shifts(t, T, beta)
        t = t.to(tl.int64)
        o = (bi * T + t) * C + c
        x = _load(k_ptr, bi, t, c, s_kb, s_kt, s_kc, mask)
        v = _load(v_ptr, bi, t, c, s_vb, s_vt, s_vc, mask)
        yr = tl.load(yr_ptr + o, mask=mask, other=0.0)
        lr = tl.load(logd_ptr + o, mask=mask, other=NEG) + lam_r
        af = p + lam_f
        ad = u + x - diag
        m = tl.maximum(tl.maximum(af, lr), ad)
        ef = tl.exp(af - m)
        er = tl.exp(lr - m)
        ed = tl.exp(ad - m)
        den = b * ef + er + ed
        y = (a * ef + yr * er + v * ed) / den
        tl.store(y_ptr + o, y.to(y_ptr.dtype.element_ty), mask=mask)
        tl.store(yr_ptr + o, y, mask=mask)
        tl.store(logd_ptr + o, m + tl.log(den), mask=mask)
        p, a, b, _ = _step(p, a, b, wp, x - phi_f, v, 1.0)


# ---------------------------------------------------------------------------- backward
@triton.jit
def wkv_bwd_summary_kernel(
    k_ptr, v_ptr, g_ptr, y_ptr, logd_ptr, w_ptr, summ_ptr,
    T, C, n_chunks, chunk,
    s_kb, s_kt, s_kc, s_vb, s_vt, s_vc, s_gb, s_gt, s_gc,
    BLOCK_C: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid_c, bi, n = _chunk_program(n_chunks, C, BLOCK_C)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = c < C
    wp, beta = _signs(w_ptr, c, mask)
    start = n * chunk
    n_tok = tl.minimum(chunk, T - start)
    base = summ_ptr + (bi * n_chunks + n) * N_BWD_STATE * C + c
    for direction in tl.static_range(2):  # 0: left to right, 1: right to left
        q = tl.full([BLOCK_C], NEG, tl.float32)  # gradient sums: key lam - logD, values g, g*y
        al = tl.zeros([BLOCK_C], tl.float32)
        be = tl.zeros([BLOCK_C], tl.float32)
        p = tl.full([BLOCK_C], NEG, tl.float32)  # value sums: key k - phi, values v, 1 (+ distances)
        a = tl.zeros([BLOCK_C], tl.float32)
        b = tl.zeros([BLOCK_C], tl.float32)
        ad = tl.zeros([BLOCK_C], tl.float32)
        bd = tl.zeros([BLOCK_C], tl.float32)
        ad_c = tl.zeros([BLOCK_C], tl.float32)
        bd_c = tl.zeros([BLOCK_C], tl.float32)
        for i in tl.range(0, n_tok, num_stages=NUM_STAGES):
            t = _token(i, direction == 1, start, n_tok)
            phi_f, phi_r, lam_f, lam_r, _ = _shifts(t, T, beta)
            t = t.to(tl.int64)
            o = (bi * T + t) * C + c
            x = _load(k_ptr, bi, t, c, s_kb, s_kt, s_kc, mask)
            v = _load(v_ptr, bi, t, c, s_vb, s_vt, s_vc, mask)
            g = _load(g_ptr, bi, t, c, s_gb, s_gt, s_gc, mask)
            y = tl.load(y_ptr + o, mask=mask, other=0.0)
            ld = tl.load(logd_ptr + o, mask=mask, other=0.0)
            key = tl.where(direction == 1, lam_f, lam_r) - ld
            q, al, be, _ = _step(q, al, be, wp, key, g, g * y)
            a_old = a
            b_old = b
            p, a, b, e_old = _step(p, a, b, wp, x - tl.where(direction == 1, phi_r, phi_f), v, 1.0)
            ad, ad_c = _dist_step(ad, ad_c, a_old, e_old)
            bd, bd_c = _dist_step(bd, bd_c, b_old, e_old)
        ad = ad - ad_c
        bd = bd - bd_c
        o8 = 8 * direction * C
        tl.store(base + o8, al, mask=mask)
        tl.store(base + o8 + C, be, mask=mask)
        tl.store(base + o8 + 2 * C, q, mask=mask)
        tl.store(base + o8 + 3 * C, a, mask=mask)
        tl.store(base + o8 + 4 * C, b, mask=mask)
        tl.store(base + o8 + 5 * C, ad, mask=mask)
        tl.store(base + o8 + 6 * C, bd, mask=mask)
        tl.store(base + o8 + 7 * C, p, mask=mask)


@triton.jit
def wkv_bwd_carry_kernel(
    summ_ptr, carry_ptr, w_ptr,
    T, C, n_chunks, chunk,
    BLOCK_C: tl.constexpr, NUM_STAGES: tl.constexpr,
):
    pid_c, bi, _ = _chunk_program(1, C, BLOCK_C)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = c < C
    wp, _ = _signs(w_ptr, c, mask)
    for direction in tl.static_range(2):
        q = tl.full([BLOCK_C], NEG, tl.float32)
        al = tl.zeros([BLOCK_C], tl.float32)
        be = tl.zeros([BLOCK_C], tl.float32)
        p = tl.full([BLOCK_C], NEG, tl.float32)
        a = tl.zeros([BLOCK_C], tl.float32)
        b = tl.zeros([BLOCK_C], tl.float32)
        ad = tl.zeros([BLOCK_C], tl.float32)
        bd = tl.zeros([BLOCK_C], tl.float32)
        for i in tl.range(0, n_chunks, num_stages=NUM_STAGES):
            n = tl.where(direction == 1, n_chunks - 1 - i, i)
            off = (bi * n_chunks + n) * N_BWD_STATE * C + c + 8 * direction * C
            tl.store(carry_ptr + off, al, mask=mask)
            tl.store(carry_ptr + off + C, be, mask=mask)
            tl.store(carry_ptr + off + 2 * C, q, mask=mask)
            tl.store(carry_ptr + off + 3 * C, a, mask=mask)
            tl.store(carry_ptr + off + 4 * C, b, mask=mask)
            tl.store(carry_ptr + off + 5 * C, ad, mask=mask)
            tl.store(carry_ptr + off + 6 * C, bd, mask=mask)
            tl.store(carry_ptr + off + 7 * C, p, mask=mask)
            n_tok = tl.minimum(chunk, T - n * chunk)
            s_al = tl.load(summ_ptr + off, mask=mask, other=0.0)
            s_be = tl.load(summ_ptr + off + C, mask=mask, other=0.0)
            s_q = tl.load(summ_ptr + off + 2 * C, mask=mask, other=NEG)
            q, al, be, _, _ = _merge(q - wp * n_tok, al, be, s_q, s_al, s_be)
            s_a = tl.load(summ_ptr + off + 3 * C, mask=mask, other=0.0)
            s_b = tl.load(summ_ptr + off + 4 * C, mask=mask, other=0.0)
            s_ad = tl.load(summ_ptr + off + 5 * C, mask=mask, other=0.0)
            s_bd = tl.load(summ_ptr + off + 6 * C, mask=mask, other=0.0)
            s_p = tl.load(summ_ptr + off + 7 * C, mask=mask, other=NEG)
            # carried tokens move n_tok steps further away
            ad = ad + n_tok * a
            bd = bd + n_tok * b
            p, a, b, s1, s2 = _merge(p - wp * n_tok, a, b, s_p, s_a, s_b)
            ad = ad * s1 + s_ad * s2
            bd = bd * s1 + s_bd * s2


@triton.jit
def wkv_bwd_output_kernel(
    k_ptr, v_ptr, g_ptr, y_ptr, logd_ptr, w_ptr, u_ptr, carry_ptr,
    dk_ptr, dv_ptr, dw_ptr, du_ptr,
    T, C, n_chunks, chunk,
    s_kb, s_kt, s_kc, s_vb, s_vt, s_vc, s_gb, s_gt, s_gc,
    BLOCK_C: tl.constexpr, NUM_STAGES: tl.constexpr, CARRY: tl.constexpr,
):
    """dk, dv: (B, T, C) float32; the right-to-left pass parks its S[g], S[g y] there.
    dw, du: (B, n_chunks, C) float32 partials of this program."""
    pid_c, bi, n = _chunk_program(n_chunks, C, BLOCK_C)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    mask = c < C
    wp, beta = _signs(w_ptr, c, mask)
    u = tl.load(u_ptr + c, mask=mask, other=0.0)
    start = n * chunk
    n_tok = tl.minimum(chunk, T - start)
    cbase = carry_ptr + (bi * n_chunks + n) * N_BWD_STATE * C + c
    cmask = mask & CARRY  # one chunk (CARRY=False): no carry pass, start from empty states
    dw = tl.zeros([BLOCK_C], tl.float32)
    du = tl.zeros([BLOCK_C], tl.float32)
    for step in tl.static_range(2):
        rev = step == 0  # the right-to-left states first
        o8 = tl.where(rev, 8 * C, 0)
        al = tl.load(cbase + o8, mask=cmask, other=0.0)
        be = tl.load(cbase + o8 + C, mask=cmask, other=0.0)
        q = tl.load(cbase + o8 + 2 * C, mask=cmask, other=NEG)
        a = tl.load(cbase + o8 + 3 * C, mask=cmask, other=0.0)
        b = tl.load(cbase + o8 + 4 * C, mask=cmask, other=0.0)
        ad = tl.load(cbase + o8 + 5 * C, mask=cmask, other=0.0)
        bd = tl.load(cbase + o8 + 6 * C, mask=cmask, other=0.0)
        p = tl.load(cbase + o8 + 7 * C, mask=cmask, other=NEG)
        ad_c = tl.zeros([BLOCK_C], tl.float32)
        bd_c = tl.zeros([BLOCK_C], tl.float32)
        for i in tl.range(0, n_tok, num_stages=NUM_STAGES):
            t = _token(i, rev, start, n_tok)
            phi_f, phi_r, lam_f, lam_r, diag = _shifts(t, T, beta)
            t = t.to(tl.int64)
            o = (bi * T + t) * C + c
            x = _load(k_ptr, bi, t, c, s_kb, s_kt, s_kc, mask)
            v = _load(v_ptr, bi, t, c, s_vb, s_vt, s_vc, mask)
            g = _load(g_ptr, bi, t, c, s_gb, s_gt, s_gc, mask)
            y = tl.load(y_ptr + o, mask=mask, other=0.0)
            ld = tl.load(logd_ptr + o, mask=mask, other=0.0)
            # this direction's share of S[g], S[g y] and of dw (exponents <= ~0: no overflow)
            sk = tl.exp(q + x - tl.where(rev, phi_f, phi_r))
            s_alpha = sk * al
            s_beta = sk * be
            dw -= g * tl.exp(p + tl.where(rev, lam_r, lam_f) - ld) * ((ad - ad_c) - y * (bd - bd_c))
            if step == 0:
                tl.store(dv_ptr + o, s_alpha, mask=mask)
                tl.store(dk_ptr + o, s_beta, mask=mask)
            else:
                s_alpha += tl.load(dv_ptr + o, mask=mask, other=0.0)
                s_beta += tl.load(dk_ptr + o, mask=mask, other=0.0)
                g_ed = g * tl.exp(u + x - diag - ld)
                g_ed_vy = g_ed * (v - y)
                tl.store(dv_ptr + o, s_alpha + g_ed, mask=mask)
                tl.store(dk_ptr + o, v * s_alpha - s_beta + g_ed_vy, mask=mask)
                du += g_ed_vy
            q, al, be, _ = _step(q, al, be, wp, tl.where(rev, lam_f, lam_r) - ld, g, g * y)
            a_old = a
            b_old = b
            p, a, b, e_old = _step(p, a, b, wp, x - tl.where(rev, phi_r, phi_f), v, 1.0)
            ad, ad_c = _dist_step(ad, ad_c, a_old, e_old)
            bd, bd_c = _dist_step(bd, bd_c, b_old, e_old)
    po = (bi * n_chunks + n) * C + c
    tl.store(dw_ptr + po, dw, mask=mask)
    tl.store(du_ptr + po, du, mask=mask)


# ----------------------------------------------------------------------------- launchers
@dataclass(frozen=True)
class LaunchConfig:
    """Sizes of one call: ``chunk`` tokens per program, ``block_c`` channels per program."""

    chunk: int
    block_c: int
    n_chunks: int

    @property
    def carry(self) -> bool:
        return self.n_chunks > 1


def _target_programs(device: torch.device | None) -> int:
    sms = DEFAULT_SMS
    if device is not None and device.type == "cuda" and torch.cuda.is_available():
        sms = torch.cuda.get_device_properties(device).multi_processor_count
    return PROGRAMS_PER_SM * sms


def launch_config(B: int, T: int, C: int, device: torch.device | None = None) -> LaunchConfig:
    """Chunk and channel-block sizes for (B, T, C) so that one call fills the GPU.

    Reasoning. A program is one warp running a sequential, latency-bound scan over its chunk,
    so a call wants many programs (``PROGRAMS_PER_SM`` per SM) and, among the splits giving
    that many, the shortest sequential path:
    - ``block_c`` = min(32, next power of two >= C): one channel per thread, no masked lanes
      for C >= 32 and no wasted loads for small C;
    - ``rows`` = B * cdiv(C, block_c) programs come for free; T is split into just enough
      chunks (``cdiv(target, rows)``) to reach the target, since every extra chunk costs a
      summary store and a carry step;
    - chunks are never shorter than ``MIN_CHUNK`` (64: below that the fixed cost of a program
      dominates, and the gradient of w loses float32 accuracy at extreme decays: on the
      T=1000, |w|T=5e4 reference case 16-token chunks gave a 2.4e-3 relative error, 64-token
      chunks 6e-4) nor than ~sqrt(T)/2: the carry pass walks the chunks one by one, so its
      length n_chunks <= 2 sqrt(T) stays comparable to a chunk's scan (two-level carry);
    - chunks are rounded up to a multiple of 16 (aligned starts; Triton specialises integer
      arguments divisible by 16); a sequence that fits one chunk is one chunk (no carry pass),
      and so is any T <= ``SPLIT_MIN_T``: a summary and a carry launch (~5 us each) would cost
      more than a 64-token scan.
    Example (132 SMs, target 2112): the network's local windows (B*n_windows rows of T=8..64)
    are one chunk each; T=2048, B=2, C=64 -> chunks of 64 -> 32 chunks x 4 rows = 128 programs;
    T=131072, B=1, C=32 -> chunks of 192 -> 683 programs.
    """
    block_c = min(DEFAULT_BLOCK_C, triton.next_power_of_2(max(C, 1)))
    rows = max(B, 1) * triton.cdiv(max(C, 1), block_c)
    want = triton.cdiv(_target_programs(device), rows)
    chunk = max(triton.cdiv(T, want), MIN_CHUNK, (math.isqrt(max(T - 1, 0)) + 2) // 2)
    chunk = triton.cdiv(chunk, 16) * 16
    if chunk >= T or T <= SPLIT_MIN_T:
        return LaunchConfig(max(T, 1), block_c, 1)
    return LaunchConfig(chunk, block_c, triton.cdiv(T, chunk))


@dataclass
class Launch:
    """One kernel launch as the launchers issue it (recorded by ``record_launches``)."""

    kernel: str
    grid: tuple[int, ...]
    args: tuple
    constexprs: dict
    num_warps: int = 1


_recorder: list[Launch] | None = None


@contextlib.contextmanager
def record_launches() -> Iterator[list[Launch]]:
    """Collect the launches of ``bi_wkv_forward``/``bi_wkv_backward`` instead of running them
    (outputs are then uninitialised). ``aot`` uses it to compile exactly the argument types
    and specialisations that Triton's runtime derives from real calls."""
    global _recorder
    prev, _recorder = _recorder, []
    try:
        yield _recorder
    finally:
        _recorder = prev


def _launch(name: str, grid: int, *args, **constexprs) -> None:
    constexprs.setdefault("NUM_STAGES", DEFAULT_NUM_STAGES)
    if _recorder is not None:
        _recorder.append(Launch(name, (grid,), args, constexprs))
        return
    KERNELS[name][(grid,)](*args, **constexprs, num_warps=1)


def _config(B: int, T: int, C: int, device, chunk: int | None, block_c: int | None) -> LaunchConfig:
    cfg = launch_config(B, T, C, device)
    if chunk is None and block_c is None:
        return cfg
    chunk = min(chunk or cfg.chunk, max(T, 1))
    return LaunchConfig(chunk, block_c or cfg.block_c, triton.cdiv(max(T, 1), chunk))


def _strides(*ts: torch.Tensor) -> list[int]:
    return [s for t in ts for s in t.stride()]


def bi_wkv_forward(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    chunk: int | None = None, block_c: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """y (B, T, C) in v's dtype, the normalised logD (B, T, C) float32, and y_hi (float32 y
    when v is float16/bfloat16, else empty), as ``torch_scan.bi_wkv_forward``. Any strides.
    ``chunk``/``block_c`` override ``launch_config`` (tests)."""
    B, T, C = k.shape
    cfg = _config(B, T, C, k.device, chunk, block_c)
    nc, cb = cfg.n_chunks, triton.cdiv(C, cfg.block_c)
    w32, u32 = w.float().contiguous(), u.float().contiguous()
    f32 = dict(device=k.device, dtype=torch.float32)
    carry = torch.empty(B, nc, FWD_STATES, C, **f32) if cfg.carry else torch.empty(0, **f32)
    y = torch.empty(B, T, C, device=k.device, dtype=v.dtype)
    logd = torch.empty(B, T, C, **f32)
    yr = torch.empty(B, T, C, **f32)
    st = _strides(k, v)
    sizes = (T, C, nc, cfg.chunk)
    if cfg.carry:
        summ = torch.empty_like(carry)
        _launch("wkv_fwd_summary", nc * cb * B, k, v, w32, summ, *sizes, *st, BLOCK_C=cfg.block_c)
        _launch("wkv_fwd_carry", cb * B, summ, carry, w32, *sizes, BLOCK_C=cfg.block_c)
    _launch("wkv_fwd_output", nc * cb * B, k, v, w32, u32, carry, y, logd, yr, *sizes, *st,
            BLOCK_C=cfg.block_c, CARRY=cfg.carry)
    return y, logd, (yr if v.dtype in (torch.float16, torch.bfloat16) else yr.new_empty(0))


def bi_wkv_backward(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
    y: torch.Tensor, logd: torch.Tensor, gy: torch.Tensor,
    chunk: int | None = None, block_c: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dw, du, dk, dv) in the dtypes of (w, u, k, v); y is float32 (y_hi for half inputs)."""
    B, T, C = k.shape
    cfg = _config(B, T, C, k.device, chunk, block_c)
    nc, cb = cfg.n_chunks, triton.cdiv(C, cfg.block_c)
    w32, u32 = w.float().contiguous(), u.float().contiguous()
    y, logd = y.float().contiguous(), logd.contiguous()
    f32 = dict(device=k.device, dtype=torch.float32)
    carry = torch.empty(B, nc, BWD_STATES, C, **f32) if cfg.carry else torch.empty(0, **f32)
    dk = torch.empty(B, T, C, **f32)
    dv = torch.empty(B, T, C, **f32)
    dw_part = torch.empty(B, nc, C, **f32)
    du_part = torch.empty(B, nc, C, **f32)
    st = _strides(k, v, gy)
    sizes = (T, C, nc, cfg.chunk)
    if cfg.carry:
        summ = torch.empty_like(carry)
        _launch("wkv_bwd_summary", nc * cb * B, k, v, gy, y, logd, w32, summ, *sizes, *st, BLOCK_C=cfg.block_c)
        _launch("wkv_bwd_carry", cb * B, summ, carry, w32, *sizes, BLOCK_C=cfg.block_c)
    _launch("wkv_bwd_output", nc * cb * B, k, v, gy, y, logd, w32, u32, carry, dk, dv, dw_part, du_part,
            *sizes, *st, BLOCK_C=cfg.block_c, CARRY=cfg.carry)
    dw = dw_part.sum((0, 1)).to(w.dtype)
    du = du_part.sum((0, 1)).to(u.dtype)
    return dw, du, dk.to(k.dtype), dv.to(v.dtype)


KERNELS = {
    "wkv_fwd_summary": wkv_fwd_summary_kernel,
    "wkv_fwd_carry": wkv_fwd_carry_kernel,
    "wkv_fwd_output": wkv_fwd_output_kernel,
    "wkv_bwd_summary": wkv_bwd_summary_kernel,
    "wkv_bwd_carry": wkv_bwd_carry_kernel,
    "wkv_bwd_output": wkv_bwd_output_kernel,
}
