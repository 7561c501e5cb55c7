"""Bi-WKV's dense backend (O(T^2) batched matmul, the CPU's automatic choice for short windows)
against the float64 reference, and when the automatic choice takes it."""

from __future__ import annotations

import pytest
import torch

from sss_nnunet.kernels import ENV_BACKEND, bi_wkv
from sss_nnunet.kernels.wkv import dense
from tests.kernels.wkv_cases import Case, assert_backend_matches_reference, make_inputs, run_op

DENSE_CASES = (
    [Case(2, T, 37) for T in (1, 2, 3, 17)] + [Case(2, 64, 37, w_max=0.3), Case(2, 128, 37, w_max=0.2)]
    + [Case(3, 64, 9, w_max=0.4, k_max=100.0), Case(2, 64, 7, w_max=1e-3, k_max=30.0)]
    + [Case(2, 64, 37, w_max=0.3, k_max=5.0, dtype=torch.float16),
       Case(2, 64, 37, w_max=0.3, k_max=5.0, dtype=torch.bfloat16)]
)


@pytest.mark.parametrize("case", DENSE_CASES, ids=str)
def test_dense_backend_matches_reference(case: Case):
    w, u, k, _, _ = make_inputs(case)
    assert dense.applies(w, u, k)
    assert_backend_matches_reference(case, "dense")


def test_dense_gradcheck_float64():
    w, u, k, v, _ = make_inputs(Case(2, 11, 3, w_max=2.0, k_max=3.0))
    xs = [t.to(torch.float64).requires_grad_() for t in (w, u, k, v)]
    assert torch.autograd.gradcheck(lambda *a: bi_wkv(*a, backend="dense"), xs)


def test_spread_bounds_every_entry_of_log_p():
    w, u, _, _, _ = make_inputs(Case(1, 40, 23, w_max=0.7))
    logp = dense.log_weights(w.double(), u.double(), 40)
    per_channel = (logp.amax((1, 2)) - logp.amin((1, 2))).max().item()
    assert dense.spread(w, u, 40) == pytest.approx(per_channel, rel=1e-12)


@pytest.mark.parametrize(("case", "chosen"), [
    (Case(2, 64, 8, w_max=0.3), "dense"),            # a local window: dense
    (Case(2, 129, 8), "torch"),                      # longer than MAX_T: the scan
    (Case(1, 100, 8, w_max=1.0), "torch"),           # spread 98 > 60: the scan
])
def test_automatic_choice_on_the_cpu(case: Case, chosen: str, monkeypatch):
    monkeypatch.delenv(ENV_BACKEND, raising=False)
    w, u, k, v, gy = make_inputs(case)
    y_auto, g_auto = run_op(w, u, k, v, gy, None)
    y_pick, g_pick = run_op(w, u, k, v, gy, chosen)
    assert torch.equal(y_auto, y_pick)  # bit-identical: the same code ran
    assert all(torch.equal(a, b) for a, b in zip(g_auto, g_pick))
    y_other, _ = run_op(w, u, k, v, gy, "torch" if chosen == "dense" else "dense")
    assert not torch.equal(y_auto, y_other)  # the two paths round differently: the check can tell


def test_environment_forces_the_scan(monkeypatch):
    w, u, k, v, gy = make_inputs(Case(2, 64, 8, w_max=0.3))
    monkeypatch.setenv(ENV_BACKEND, "torch")
    y_env, _ = run_op(w, u, k, v, gy, None)
    assert torch.equal(y_env, run_op(w, u, k, v, gy, "torch")[0])
