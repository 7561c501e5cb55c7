"""Shared Bi-WKV test cases (defined in ``sss_nnunet.kernels.wkv.cases``, also used by
``python -m sss_nnunet.gpucheck``) and the assertions the tests build on them."""

from __future__ import annotations

import torch

from sss_nnunet.kernels.wkv.cases import (  # noqa: F401  (re-exported for the tests)
    CASES,
    EXTREME_GRAD_TOL,
    SHAPES_T,
    TOL,
    Case,
    above_tolerance,
    errors,
    make_inputs,
    reference,
    rel_err,
    run_op,
)


def assert_matches(errs: dict[str, float], case: Case) -> None:
    bad = above_tolerance(errs, case)
    assert not bad, f"{case}: errors above tolerance: {bad} (all: {errs})"


def assert_backend_matches_reference(case: Case, backend: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """Runs ``case`` through the public op with ``backend``, checks y and the four gradients against
    the float64 reference (tolerances above) and their dtypes; returns (y, grads) for further checks."""
    w, u, k, v, gy = make_inputs(case)
    y_ref, g_ref = reference(w, u, k, v, gy)
    y, grads = run_op(w, u, k, v, gy, backend)
    assert y.dtype == v.dtype and y.shape == v.shape
    assert [g.dtype for g in grads] == [w.dtype, u.dtype, k.dtype, v.dtype]
    assert_matches(errors(y, grads, y_ref, g_ref), case)
    return y, grads
