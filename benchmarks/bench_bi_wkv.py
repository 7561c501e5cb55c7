"""Bi-WKV on this CPU: the O(T) torch path against the O(T^2) reference.

    python benchmarks/bench_bi_wkv.py [--T 1024 4096 16384 65536] [--C 64] [--repeats 3]

Prints, measured in this run (B=1): torch-path time for forward and forward+backward, the
naive forward time where it fits the time budget, the ratio naive/torch, and the peak
memory of forward+backward (peak RSS growth of a fresh process over its warmed-up baseline).
Targets: ratio >= 100 at T = 4096; time and peak memory grow linearly (T x4 -> at most x4.5).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

from sss_nnunet.kernels import bi_wkv
from sss_nnunet.kernels.wkv.naive import bi_wkv_naive

RATIO_TARGET_T, RATIO_TARGET = 4096, 100.0
GROWTH_LIMIT = 4.5


def inputs(T: int, C: int, requires_grad: bool = False) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(T)
    w = torch.rand(C, generator=g) * 8 / T  # Vision-RWKV passes decay / T
    u = torch.randn(C, generator=g) / T
    k, v = torch.randn(1, T, C, generator=g), torch.randn(1, T, C, generator=g)
    return [t.requires_grad_(requires_grad) for t in (w, u, k, v)]


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def forward_backward(T: int, C: int) -> None:
    xs = inputs(T, C, requires_grad=True)
    bi_wkv(*xs, backend="torch").sum().backward()


def peak_rss_mb(T: int, C: int) -> float:
    """Peak RSS growth (MB) of forward+backward at T, measured in a fresh process."""
    code = (
        "import resource, sys, torch\n"
        "sys.path.insert(0, '.')\n"
        "from benchmarks.bench_bi_wkv import forward_backward\n"
        f"forward_backward(64, {C})\n"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"forward_backward({T}, {C})\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)\n"
    )
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    ap.add_argument("--C", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive-max-T", type=int, default=4096, help="largest T to run the O(T^2) reference")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, B=1, C={args.C}\n")
    rows = []
    for T in args.T:
        w, u, k, v = inputs(T, args.C)
        fwd = best_time(lambda: bi_wkv(w, u, k, v, backend="torch"), args.repeats)  # noqa: B023
        fb = best_time(lambda: forward_backward(T, args.C), args.repeats)  # noqa: B023
        naive = None
        if T <= args.naive_max_T:
            naive = best_time(lambda: bi_wkv_naive(w, u, k, v), 1)  # noqa: B023
        r = {"T": T, "fwd_s": fwd, "fwd_bwd_s": fb, "naive_fwd_s": naive, "peak_mb": peak_rss_mb(T, args.C)}
        rows.append(r)
        ratio = f"{naive / fwd:10.0f}" if naive else f"{'-':>10}"
        naive_s = f"{naive:10.3f}" if naive else f"{'(skipped)':>10}"
        print(f"T={T:>6}  fwd {fwd:8.4f}s  fwd+bwd {fb:8.4f}s  naive fwd {naive_s}s  "
              f"naive/torch {ratio}  peak {r['peak_mb']:8.1f} MB", flush=True)

    print(f"\ngrowth per step of T (target: <= x{GROWTH_LIMIT} when T grows x4)")
    ok = True
    for a, b in zip(rows, rows[1:]):
        f = b["T"] / a["T"]
        growth = {key: b[key] / a[key] for key in ("fwd_s", "fwd_bwd_s", "peak_mb")}
        limit = GROWTH_LIMIT * f / 4
        flags = {key: g <= limit for key, g in growth.items()}
        ok &= all(flags.values())
        print(f"  T {a['T']:>6} -> {b['T']:>6} (x{f:g}):  fwd x{growth['fwd_s']:.2f}  "
              f"fwd+bwd x{growth['fwd_bwd_s']:.2f}  peak mem x{growth['peak_mb']:.2f}  "
              f"{'ok' if all(flags.values()) else 'ABOVE LIMIT'}")
    at = next((r for r in rows if r["T"] == RATIO_TARGET_T and r["naive_fwd_s"]), None)
    if at:
        ratio = at["naive_fwd_s"] / at["fwd_s"]
        ok &= ratio >= RATIO_TARGET
        print(f"\nnaive/torch at T={RATIO_TARGET_T}: {ratio:.0f} (target >= {RATIO_TARGET:.0f}): "
              f"{'ok' if ratio >= RATIO_TARGET else 'BELOW TARGET'}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
