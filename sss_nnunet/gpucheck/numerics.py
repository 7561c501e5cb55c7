"""(a) Bi-WKV backends against the float64 naive reference on the device, and bit-identical
gradients over two runs (tolerances of the test suite: ``sss_nnunet.kernels.wkv.cases``)."""

from __future__ import annotations

import torch

from sss_nnunet.kernels.wkv.cases import CASES, Case, above_tolerance, errors, make_inputs, reference, run_op

# The special shapes on top of the test cases: T = 1, C = 1, one chunk, many chunks, odd C,
# long T on CUDA only (the reference keeps O(B T^2 C) float64 values for autograd: ~3 GB here).
SPECIAL = [Case(1, 1, 1), Case(3, 9, 1, w_max=3.0), Case(64, 27, 37), Case(2, 64, 32, w_max=3.0),
           Case(1, 2048, 16, w_max=2.0, k_max=3.0), Case(1, 4096, 5, k_max=3.0)]
HALF = [Case(1, 2048, 16, k_max=3.0, dtype=torch.float16), Case(1, 2048, 16, k_max=3.0, dtype=torch.bfloat16)]
QUICK = [Case(1, 1, 1), Case(2, 17, 37), Case(2, 64, 5, w_max=50.0, k_max=100.0),
         Case(2, 17, 37, dtype=torch.float16), Case(2, 17, 37, dtype=torch.bfloat16)]


def cases(device: torch.device, quick: bool) -> list[Case]:
    if quick:
        return QUICK
    out = list(CASES) + SPECIAL[:4]
    return out + SPECIAL[4:] + HALF if device.type == "cuda" else out


def check_case(case: Case, backend: str, device: torch.device) -> dict:
    w, u, k, v, gy = make_inputs(case, device=device)
    y_ref, g_ref = reference(w, u, k, v, gy)
    y, grads = run_op(w, u, k, v, gy, backend)
    errs = errors(y, grads, y_ref, g_ref)
    _, grads2 = run_op(w, u, k, v, gy, backend)
    deterministic = all(torch.equal(a, b) for a, b in zip(grads, grads2))
    bad = above_tolerance(errs, case)
    dtypes_ok = y.dtype == v.dtype and [g.dtype for g in grads] == [w.dtype, u.dtype, k.dtype, v.dtype]
    return {
        "case": str(case), "backend": backend, "errors": errs, "above_tolerance": bad,
        "deterministic": deterministic, "status": "ok" if not bad and deterministic and dtypes_ok else "FAIL",
    }


def run(device: torch.device, quick: bool) -> dict:
    """{"torch": {...}, "triton": {...}}: per backend a list of case results or a skip entry."""
    out = {}
    for backend in ("torch", "triton"):
        if backend == "triton" and device.type != "cuda":
            out[backend] = {"status": "skipped", "reason": "skipped: no CUDA (Triton kernels need a GPU; "
                            "CPU coverage: tests/kernels/test_bi_wkv_triton.py under TRITON_INTERPRET=1)"}
            continue
        results = [check_case(c, backend, device) for c in cases(device, quick)]
        status = "ok" if all(r["status"] == "ok" for r in results) else "FAIL"
        out[backend] = {"status": status, "device": str(device), "results": results}
    return out
