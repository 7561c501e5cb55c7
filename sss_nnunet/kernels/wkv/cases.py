"""Bi-WKV check cases: inputs, the float64 reference, error measures and tolerances.

Shared by the tests (tests/kernels) and ``python -m sss_nnunet.gpucheck``, which runs the
same cases on a CUDA device."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from sss_nnunet.kernels.wkv.naive import bi_wkv_naive


@dataclass(frozen=True)
class Case:
    B: int
    T: int
    C: int
    w_max: float = 1.0  # |w| after the /T scaling, both signs
    k_max: float = 1.0  # |k| up to this
    dtype: torch.dtype = torch.float32

    def __str__(self) -> str:
        return f"B{self.B}-T{self.T}-C{self.C}-w{self.w_max:g}-k{self.k_max:g}-{str(self.dtype)[6:]}"


def make_inputs(case: Case, seed: int = 0, device: str | torch.device = "cpu") -> tuple[torch.Tensor, ...]:
    """w, u (C,) float32; k, v (B, T, C) in case.dtype. w spans [-w_max, w_max] (both signs).
    Drawn on the CPU (same values on every device), then moved to ``device``."""
    g = torch.Generator().manual_seed(seed)
    C = case.C
    w = (torch.rand(C, generator=g) * 2 - 1) * case.w_max
    w[0], w[-1] = case.w_max, -case.w_max  # the extremes of both signs are always present
    u = torch.randn(C, generator=g)
    k = (torch.rand(case.B, case.T, C, generator=g) * 2 - 1) * case.k_max
    k.view(-1)[0] = case.k_max
    v = torch.randn(case.B, case.T, C, generator=g)
    gy = torch.randn(case.B, case.T, C, generator=g)
    return tuple(t.to(device) for t in (w, u, k.to(case.dtype), v.to(case.dtype), gy.to(case.dtype)))


def reference(w, u, k, v, gy) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Exact y and (dw, du, dk, dv) in float64 from the same (rounded) inputs."""
    xs = [t.detach().to(torch.float64).requires_grad_() for t in (w, u, k, v)]
    y = bi_wkv_naive(*xs)
    y.backward(gy.to(torch.float64))
    return y.detach(), [t.grad for t in xs]


def run_op(w, u, k, v, gy, backend: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """y and (dw, du, dk, dv) of the public op with the given backend."""
    from sss_nnunet.kernels import bi_wkv

    xs = [t.detach().clone().requires_grad_() for t in (w, u, k, v)]
    y = bi_wkv(*xs, backend=backend)
    y.backward(gy)
    return y.detach(), [t.grad for t in xs]


def rel_err(actual: torch.Tensor, ref: torch.Tensor) -> float:
    """max |actual - ref| / max(max |ref|, 1).

    Inputs are O(1), so 1 is the natural scale of every output and gradient; it keeps a
    gradient that is exactly tiny (dw with w = -50: ~1e-16) from turning float32 rounding
    of O(1) terms into a huge "relative" error.
    """
    scale = ref.abs().max().clamp_min(1.0)
    return ((actual.to(torch.float64) - ref).abs().max() / scale).item()


def errors(y, grads, y_ref, grads_ref) -> dict[str, float]:
    names = ("dw", "du", "dk", "dv")
    out = {"y": rel_err(y, y_ref)}
    out.update({n: rel_err(a, b) for n, a, b in zip(names, grads, grads_ref)})
    return out


# Tolerances (relative to the reference's max) by input dtype. float16/bfloat16 results are
# rounded to the input dtype; dw/du also see the rounded y of the forward pass.
TOL = {
    torch.float64: {"y": 1e-10, "grad": 1e-9},
    torch.float32: {"y": 2e-5, "grad": 2e-4},
    torch.float16: {"y": 2e-3, "grad": 1e-2},
    torch.bfloat16: {"y": 1.6e-2, "grad": 6e-2},
}
# w = +-50 per step and |k| = 100 make dw a sum of exponentially separated terms.
EXTREME_GRAD_TOL = 2e-3


def tolerance(case: Case) -> dict[str, float]:
    """Allowed ``errors`` for ``case``: {"y": ..., "grad": ...}."""
    tol = dict(TOL[case.dtype])
    if case.dtype == torch.float32 and (case.w_max > 10 or case.k_max > 10):
        tol["grad"] = max(tol["grad"], EXTREME_GRAD_TOL)
    return tol


def above_tolerance(errs: dict[str, float], case: Case) -> dict[str, float]:
    """The entries of ``errs`` above ``tolerance(case)``, or not finite (a NaN error, e.g. from an
    overflowing output, fails ``e <= tol`` as it must); empty: the case passes."""
    tol = tolerance(case)
    return {n: e for n, e in errs.items() if not e <= (tol["y"] if n == "y" else tol["grad"])}


SHAPES_T = (1, 2, 3, 17, 256, 1000)
CASES = (
    [Case(2, T, 37) for T in SHAPES_T]
    + [Case(2, 256, 5, w_max=50.0, k_max=100.0), Case(1, 1000, 7, w_max=50.0, k_max=100.0)]
    + [Case(2, 300, 7, w_max=1e-3, k_max=100.0), Case(1, 17, 3, w_max=50.0, k_max=1.0)]
    + [Case(2, 17, 37, dtype=torch.float16), Case(2, 256, 37, k_max=5.0, dtype=torch.float16)]
    + [Case(2, 17, 37, dtype=torch.bfloat16), Case(2, 256, 37, k_max=5.0, dtype=torch.bfloat16)]
)
