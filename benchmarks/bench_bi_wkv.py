"""Bi-WKV on this CPU: our O(T) torch path against a plain PyTorch version and the O(T^2) reference.

    python benchmarks/bench_bi_wkv.py [--T 1024 4096 16384 65536] [--C 64] [--repeats 3]

Every timed function gets the same treatment: one warm-up call, then the best of ``--repeats``
calls, the functions and sizes interleaved in every round so machine noise hits them alike (B=1).

- ``torch``: ``bi_wkv(..., backend="torch")``, forward and forward+backward, float32;
- ``plain``: :func:`plain_bi_wkv` below, what a user would write in plain PyTorch (chunked
  cumsum in log space, backward by autograd), forward and forward+backward, float32: the honest
  competitor, ratio ``plain/torch``;
- ``naive``: the O(T^2) float64 reference (it only exists in float64), against the torch path run on
  the same float64 inputs, ratio ``naive/torch`` (both float64), where T <= ``--naive-max-T``.

Also printed: each path's largest error against the float64 torch path (accuracy, not just speed),
and the peak memory of the torch path's forward+backward (the high-water mark of live tensor memory,
replayed from the allocation events the PyTorch profiler records). Targets: naive/torch >= 100 at
T = 4096 (same dtype); plain/torch >= 1 (not slower than the plain version) for forward+backward;
time and peak memory grow linearly (T x4 -> at most x4.5).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from benchmarks._memory import peak_memory_mb  # noqa: E402
from sss_nnunet.kernels import bi_wkv
from sss_nnunet.kernels.wkv.naive import bi_wkv_naive

RATIO_TARGET_T, RATIO_TARGET = 4096, 100.0
PLAIN_TARGET = 1.0
GROWTH_LIMIT = 4.5
NEG = -1.0e30  # log of an empty sum


# ---- the plain PyTorch competitor (deliberately not the package's algorithm) -----------------------

def _past_sums(w: torch.Tensor, k: torch.Tensor, v: torch.Tensor, chunk: int):
    """A_t = sum_{i<t} e^{-(t-1-i) w + k_i} v_i and B_t (same with v = 1), as (A, B, log scale) with
    the true sums = A * e^scale. Chunks of ``chunk`` tokens: inside a chunk an exclusive cumsum of
    e^{j w + k_j - m} (m = the chunk's max), between chunks a carried state. (B, T, C) each."""
    Bsz, T, C = k.shape
    nums, dens, scales = [], [], []
    s_num = k.new_zeros(Bsz, C)
    s_den = k.new_zeros(Bsz, C)
    s_p = k.new_full((Bsz, C), NEG)
    for c0 in range(0, T, chunk):
        kc, vc = k[:, c0:c0 + chunk], v[:, c0:c0 + chunk]
        n = kc.shape[1]
        j = torch.arange(n, dtype=k.dtype, device=k.device)[None, :, None]
        x = j * w + kc
        m = x.amax(1, keepdim=True).detach()
        e = torch.exp(x - m)
        cs_num = F.pad(torch.cumsum(e * vc, 1)[:, :-1], (0, 0, 1, 0))  # exclusive: i < j
        cs_den = F.pad(torch.cumsum(e, 1)[:, :-1], (0, 0, 1, 0))
        inner = -(j - 1) * w + m               # log scale of the in-chunk sums at token j
        carried = -j * w + s_p[:, None]        # log scale of the state entering the chunk, decayed j times
        q = torch.maximum(inner, carried)
        a, b = torch.exp(inner - q), torch.exp(carried - q)
        nums.append(cs_num * a + s_num[:, None] * b)
        dens.append(cs_den * a + s_den[:, None] * b)
        scales.append(q)
        # state entering the next chunk: the whole chunk (inclusive) plus the old state decayed n times
        inner_end, carried_end = -(n - 1) * w + m[:, 0], -n * w + s_p
        p = torch.maximum(inner_end, carried_end)
        a, b = torch.exp(inner_end - p), torch.exp(carried_end - p)
        s_num = (cs_num[:, -1] + e[:, -1] * vc[:, -1]) * a + s_num * b
        s_den = (cs_den[:, -1] + e[:, -1]) * a + s_den * b
        s_p = p
    return torch.cat(nums, 1), torch.cat(dens, 1), torch.cat(scales, 1)


def plain_bi_wkv(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                 chunk: int = 256) -> torch.Tensor:
    """Bi-WKV (B, T, C) as a user would write it in plain PyTorch: past sums left to right, future sums
    on the flipped sequence, the token's own ``e^{u+k_t}`` term, combined in log space; autograd backward.

    Like every cumsum formulation it needs ``|w| * chunk`` small (e^{j w} must not underflow inside a
    chunk): fine for Vision-RWKV's ``w = decay / T`` used here, not for arbitrary ``w``."""
    dtype = torch.float64 if v.dtype == torch.float64 else torch.float32
    k, v, w, u = k.to(dtype), v.to(dtype), w.to(dtype), u.to(dtype)
    an, ad, ap = _past_sums(w, k, v, chunk)
    fn, fd, fp = (x.flip(1) for x in _past_sums(w, k.flip(1), v.flip(1), chunk))
    own = u + k
    q = torch.maximum(torch.maximum(ap, fp), own)
    a, f, o = torch.exp(ap - q), torch.exp(fp - q), torch.exp(own - q)
    return ((an * a + fn * f + o * v) / (ad * a + fd * f + o)).to(v.dtype)


# ---- measurement -----------------------------------------------------------------------------------

def inputs(T: int, C: int, dtype=torch.float32, requires_grad: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(T)
    w = torch.rand(C, generator=g) * 8 / T  # Vision-RWKV passes decay / T
    u = torch.randn(C, generator=g) / T
    k, v = torch.randn(1, T, C, generator=g), torch.randn(1, T, C, generator=g)
    return [t.to(dtype).requires_grad_(requires_grad) for t in (w, u, k, v)]


def _torch(*xs):
    return bi_wkv(*xs, backend="torch")


def _fwd(op: Callable, xs: list[torch.Tensor]) -> Callable[[], object]:
    def run():
        with torch.no_grad():
            return op(*xs)
    return run


def _fwd_bwd(op: Callable, xs: list[torch.Tensor]) -> Callable[[], object]:
    def run():
        for x in xs:
            x.grad = None
        op(*xs).sum().backward()
    return run


def timed_functions(T: int, C: int, naive_max_T: int, chunk: int) -> dict[str, Callable[[], object]]:
    f32, f32g = inputs(T, C), inputs(T, C, requires_grad=True)
    fns = {
        "torch_fwd": _fwd(_torch, f32),
        "torch_fwd_bwd": _fwd_bwd(_torch, f32g),
        "plain_fwd": _fwd(lambda *xs: plain_bi_wkv(*xs, chunk=chunk), f32),
        "plain_fwd_bwd": _fwd_bwd(lambda *xs: plain_bi_wkv(*xs, chunk=chunk), f32g),
    }
    if T <= naive_max_T:
        f64 = inputs(T, C, torch.float64)
        fns["torch64_fwd"] = _fwd(_torch, f64)
        fns["naive64_fwd"] = _fwd(bi_wkv_naive, f64)
    return fns


def best_times(Ts: list[int], C: int, repeats: int, naive_max_T: int, chunk: int) -> dict[int, dict[str, float]]:
    """Best time of every function per T: one warm-up round, then ``repeats`` rounds, all interleaved."""
    fns = {T: timed_functions(T, C, naive_max_T, chunk) for T in Ts}
    best = {T: dict.fromkeys(fns[T], float("inf")) for T in Ts}
    for r in range(repeats + 1):
        for T in Ts:
            for name, fn in fns[T].items():
                t0 = time.perf_counter()
                fn()
                dt = time.perf_counter() - t0
                if r > 0:  # round 0 is the warm-up
                    best[T][name] = min(best[T][name], dt)
        print(f"  round {r}/{repeats} done{' (warm-up)' if r == 0 else ''}", file=sys.stderr, flush=True)
    return best


def max_errors(T: int, C: int, naive_max_T: int, chunk: int) -> dict[str, float]:
    """Largest |y - y_ref| of each float32 path, y_ref = the torch path in float64 (checked against the
    naive reference where that runs)."""
    xs = inputs(T, C)
    x64 = [x.to(torch.float64) for x in xs]
    with torch.no_grad():
        ref = bi_wkv(*x64, backend="torch")
        out = {"torch_err": (bi_wkv(*xs, backend="torch").double() - ref).abs().max().item(),
               "plain_err": (plain_bi_wkv(*xs, chunk=chunk).double() - ref).abs().max().item()}
        if T <= min(naive_max_T, 1024):
            out["torch64_vs_naive"] = (bi_wkv_naive(*x64) - ref).abs().max().item()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    ap.add_argument("--C", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="timed calls per function after one warm-up call")
    ap.add_argument("--naive-max-T", type=int, default=4096, help="largest T to run the O(T^2) reference")
    ap.add_argument("--plain-chunk", type=int, default=256, help="chunk length of the plain PyTorch version")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, B=1, C={args.C}; every function: "
          f"1 warm-up + best of {args.repeats}; plain = chunked log-space cumsum (chunk {args.plain_chunk}), "
          f"autograd backward\n", flush=True)
    times = best_times(args.T, args.C, args.repeats, args.naive_max_T, args.plain_chunk)
    rows = []
    print(f"{'T':>6} | {'torch fwd':>9} {'fwd+bwd':>8} | {'plain fwd':>9} {'fwd+bwd':>8} | "
          f"{'plain/torch':>15} | {'torch f64':>9} {'naive f64':>9} {'naive/torch':>11} | "
          f"{'err torch':>9} {'err plain':>9} | {'peak MB':>8}")
    print(f"{'':>6} | {'f32 (s)':>9} {'(s)':>8} | {'f32 (s)':>9} {'(s)':>8} | {'fwd  fwd+bwd':>15} | "
          f"{'fwd (s)':>9} {'fwd (s)':>9} {'(f64)':>11} | {'(f32)':>9} {'(f32)':>9} |")
    for T in args.T:
        r = {"T": T, **times[T], **max_errors(T, args.C, args.naive_max_T, args.plain_chunk)}
        xs = inputs(T, args.C, requires_grad=True)
        r["peak_mb"] = peak_memory_mb(_fwd_bwd(_torch, xs))
        r["plain_over_torch_fwd"] = r["plain_fwd"] / r["torch_fwd"]
        r["plain_over_torch_fwd_bwd"] = r["plain_fwd_bwd"] / r["torch_fwd_bwd"]
        naive = r.get("naive64_fwd")
        r["naive_over_torch64"] = naive / r["torch64_fwd"] if naive else None
        rows.append(r)
        t64 = f"{r['torch64_fwd']:9.4f} {naive:9.3f} {r['naive_over_torch64']:11.0f}" if naive else \
            f"{'-':>9} {'(skipped)':>9} {'-':>11}"
        print(f"{T:>6} | {r['torch_fwd']:9.4f} {r['torch_fwd_bwd']:8.4f} | {r['plain_fwd']:9.4f} "
              f"{r['plain_fwd_bwd']:8.4f} | {r['plain_over_torch_fwd']:6.2f} {r['plain_over_torch_fwd_bwd']:8.2f} | "
              f"{t64} | {r['torch_err']:9.1e} {r['plain_err']:9.1e} | {r['peak_mb']:8.1f}", flush=True)
    checked = [r["torch64_vs_naive"] for r in rows if "torch64_vs_naive" in r]
    if checked:
        print(f"\n(y_ref, the float64 torch path, differs from the naive reference by at most {max(checked):.1e})")

    print(f"\ngrowth of the torch path per step of T (target: <= x{GROWTH_LIMIT} when T grows x4)")
    ok = True
    for a, b in zip(rows, rows[1:]):
        f = b["T"] / a["T"]
        growth = {key: b[key] / a[key] for key in ("torch_fwd", "torch_fwd_bwd", "peak_mb")}
        flags = {key: g <= GROWTH_LIMIT * f / 4 for key, g in growth.items()}
        ok &= all(flags.values())
        print(f"  T {a['T']:>6} -> {b['T']:>6} (x{f:g}):  fwd x{growth['torch_fwd']:.2f}  "
              f"fwd+bwd x{growth['torch_fwd_bwd']:.2f}  peak mem x{growth['peak_mb']:.2f}  "
              f"{'ok' if all(flags.values()) else 'ABOVE LIMIT'}")
    at = next((r for r in rows if r["T"] == RATIO_TARGET_T and r["naive_over_torch64"]), None)
    if at:
        ratio = at["naive_over_torch64"]
        ok &= ratio >= RATIO_TARGET
        print(f"\nnaive/torch (both float64) at T={RATIO_TARGET_T}: {ratio:.0f} (target >= {RATIO_TARGET:.0f}): "
              f"{'ok' if ratio >= RATIO_TARGET else 'BELOW TARGET'}")
    worst = min(r["plain_over_torch_fwd_bwd"] for r in rows)
    ok &= worst >= PLAIN_TARGET
    print(f"plain/torch fwd+bwd (float32), lowest over T: {worst:.2f} (target >= {PLAIN_TARGET:g}): "
          f"{'ok' if worst >= PLAIN_TARGET else 'BELOW TARGET'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
