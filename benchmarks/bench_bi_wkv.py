"""Bi-WKV on this CPU: the O(T) torch path against the O(T^2) reference.

    python benchmarks/bench_bi_wkv.py [--T 1024 4096 16384 65536] [--C 64] [--repeats 3]

Prints, measured in this run (B=1): torch-path time for forward and forward+backward (best
of ``--repeats`` runs, the sizes interleaved so machine noise hits them alike), the naive
forward time where it fits the time budget, the ratio naive/torch, and the peak memory of
forward+backward (the high-water mark of live tensor memory, replayed from the allocation
events the PyTorch profiler records). Targets: ratio >= 100 at T = 4096; time and peak
memory grow linearly (T x4 -> at most x4.5).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from benchmarks._memory import peak_memory_mb  # noqa: E402
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


def forward_backward(xs: list[torch.Tensor]) -> None:
    bi_wkv(*xs, backend="torch").sum().backward()


def best_times(Ts: list[int], C: int, repeats: int) -> dict[int, dict[str, float]]:
    """Best forward and forward+backward time per T, the sizes interleaved in every round."""
    data = {T: inputs(T, C) for T in Ts}
    grads = {T: inputs(T, C, requires_grad=True) for T in Ts}
    best = {T: {"fwd_s": float("inf"), "fwd_bwd_s": float("inf")} for T in Ts}
    for _ in range(repeats + 1):  # the first round warms up
        for T in Ts:
            t0 = time.perf_counter()
            bi_wkv(*data[T], backend="torch")
            t1 = time.perf_counter()
            forward_backward(grads[T])
            t2 = time.perf_counter()
            best[T]["fwd_s"] = min(best[T]["fwd_s"], t1 - t0)
            best[T]["fwd_bwd_s"] = min(best[T]["fwd_bwd_s"], t2 - t1)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[1024, 4096, 16384, 65536])
    ap.add_argument("--C", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--naive-max-T", type=int, default=4096, help="largest T to run the O(T^2) reference")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, B=1, C={args.C}, "
          f"best of {args.repeats}\n")
    times = best_times(args.T, args.C, args.repeats)
    rows = []
    for T in args.T:
        naive = None
        if T <= args.naive_max_T:
            w, u, k, v = inputs(T, args.C)
            t0 = time.perf_counter()
            bi_wkv_naive(w, u, k, v)
            naive = time.perf_counter() - t0
        xs = inputs(T, args.C, requires_grad=True)
        r = {"T": T, **times[T], "naive_fwd_s": naive, "peak_mb": peak_memory_mb(lambda: forward_backward(xs))}  # noqa: B023
        rows.append(r)
        ratio = f"{naive / r['fwd_s']:10.0f}" if naive else f"{'-':>10}"
        naive_s = f"{naive:10.3f}s" if naive else f"{'(skipped)':>11}"
        print(f"T={T:>6}  fwd {r['fwd_s']:8.4f}s  fwd+bwd {r['fwd_bwd_s']:8.4f}s  naive fwd {naive_s}  "
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
