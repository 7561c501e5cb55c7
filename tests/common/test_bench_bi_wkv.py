"""benchmarks/bench_bi_wkv.py: its plain-PyTorch competitor is correct, and every path is timed alike
(same dtype for naive and torch, one warm-up and the same number of repeats). Timing is not tested."""

from __future__ import annotations

import pytest
import torch

from tests.common.bench_scripts import load_benchmark
from tests.kernels.wkv_cases import Case, errors, make_inputs, reference


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("bench_bi_wkv")


@pytest.mark.parametrize("case", [Case(2, 300, 5, w_max=0.5, k_max=3.0), Case(1, 257, 4, w_max=8 / 257),
                                  Case(1, 1, 3), Case(1, 64, 3, w_max=0.05, dtype=torch.float64)], ids=str)
def test_plain_competitor_matches_the_reference(bench, case):
    w, u, k, v, gy = make_inputs(case)
    xs = [t.clone().requires_grad_() for t in (w, u, k, v)]
    y = bench.plain_bi_wkv(*xs, chunk=64)
    y.backward(gy)
    errs = errors(y.detach(), [x.grad for x in xs], *reference(w, u, k, v, gy))
    assert max(errs.values()) < (1e-7 if case.dtype == torch.float64 else 2e-5), errs  # w, u stay float32


def test_every_function_gets_one_warm_up_and_the_same_repeats(bench, monkeypatch):
    calls: dict[tuple[int, str], int] = {}

    def counting(T, C, naive_max_T, chunk):
        names = ["torch_fwd", "torch_fwd_bwd", "plain_fwd", "plain_fwd_bwd"]
        names += ["torch64_fwd", "naive64_fwd"] if T <= naive_max_T else []
        return {n: (lambda T=T, n=n: calls.__setitem__((T, n), calls.get((T, n), 0) + 1)) for n in names}

    monkeypatch.setattr(bench, "timed_functions", counting)
    best = bench.best_times([8, 16], 4, repeats=3, naive_max_T=8, chunk=4)
    assert set(calls.values()) == {4} and len(calls) == 6 + 4
    assert set(best[8]) == {"torch_fwd", "torch_fwd_bwd", "plain_fwd", "plain_fwd_bwd", "torch64_fwd", "naive64_fwd"}


def test_naive_and_torch_compared_in_the_same_dtype(bench, monkeypatch):
    seen: dict[str, set] = {"naive": set(), "torch": set()}
    real_naive, real_op = bench.bi_wkv_naive, bench.bi_wkv

    def naive(w, u, k, v):
        seen["naive"].add(k.dtype)
        return real_naive(w, u, k, v)

    def op(w, u, k, v, backend=None):
        seen["torch"].add(k.dtype)
        return real_op(w, u, k, v, backend=backend)

    monkeypatch.setattr(bench, "bi_wkv_naive", naive)
    monkeypatch.setattr(bench, "bi_wkv", op)
    fns = bench.timed_functions(32, 4, naive_max_T=32, chunk=8)
    seen["torch"].clear()
    fns["torch64_fwd"]()
    fns["naive64_fwd"]()
    assert seen["naive"] == seen["torch"] == {torch.float64}
