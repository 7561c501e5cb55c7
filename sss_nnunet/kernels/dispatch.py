"""The public Bi-WKV op: backend choice, a PyTorch custom op, autograd and a FLOP formula.

``bi_wkv(w, u, k, v)`` runs ``torch.ops.sss_nnunet.bi_wkv_fwd`` (and ``bi_wkv_bwd`` in
backward). As custom ops they are opaque to ``torch.compile``: no graph break, no tracing
into the scan. Backends:

- ``torch``: O(T) PyTorch scan (default on CPU; float64 inputs always use it);
- ``dense``: O(T^2) batched matmul over channels (``wkv/dense.py``, plain autograd): chosen
  automatically on the CPU, in eager mode, for short sequences (T <= 128, the local windows) whose
  decay range keeps it exact (``dense.applies``); about 2x faster forward and 2.5x forward+backward
  there (``benchmarks/bench_bi_wkv.py``);
- ``triton``: fused chunked kernels (default on CUDA; on the CPU only under TRITON_INTERPRET=1);
- ``naive``: O(T^2) float64 reference through plain autograd (tests only);
- ``onnx``: O(T log T) log-space doubling scan in plain tensor ops (``wkv/log_scan.py``):
  chosen automatically while ``torch.onnx.export`` traces, so an exported network holds
  Bi-WKV as standard ONNX operators (no custom op).

``SSS_BI_WKV_BACKEND`` (naive | torch | dense | triton | onnx | auto) forces a backend for every call
that does not pass one explicitly (except during ONNX export, which always uses ``onnx``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from types import ModuleType

import torch
from torch.utils.flop_counter import register_flop_formula

from sss_nnunet import fastpaths
from sss_nnunet.kernels.wkv import dense, torch_scan
from sss_nnunet.kernels.wkv.log_scan import bi_wkv_log_scan
from sss_nnunet.kernels.wkv.naive import bi_wkv_naive

BACKENDS = ("naive", "torch", "dense", "triton", "onnx")
ENV_BACKEND = "SSS_BI_WKV_BACKEND"
_EXPORTING = False  # set by ``onnx_export_mode``
# FLOPs per (batch, token, channel): two directional scans (~10 each) plus the combine;
# the backward pass rescans four times.
FWD_FLOPS_PER_ELEMENT = 32
BWD_FLOPS_PER_ELEMENT = 128


def _triton_module() -> ModuleType:
    try:
        from sss_nnunet.kernels.wkv import triton_kernels
    except ImportError as e:  # pragma: no cover - triton ships with Linux torch wheels
        raise RuntimeError(f"Bi-WKV backend 'triton' needs the triton package: {e}") from e
    return triton_kernels


@contextlib.contextmanager
def onnx_export_mode() -> Iterator[None]:
    """Every ``bi_wkv`` call without an explicit backend uses ``onnx`` inside this block.

    ``torch.onnx.is_in_onnx_export()`` already says so during ``torch.onnx.export``, except where
    the exporter falls back to ``torch.export(strict=True)``: TorchDynamo folds that function to
    False. Wrap the export in this context and the choice holds on every capture path."""
    global _EXPORTING
    before, _EXPORTING = _EXPORTING, True
    try:
        yield
    finally:
        _EXPORTING = before


def _requested(backend: str | None) -> str:
    """The explicit argument, else ``$SSS_BI_WKV_BACKEND``, else ``auto``."""
    return backend or os.environ.get(ENV_BACKEND, "auto") or "auto"


def resolve_backend(backend: str | None, x: torch.Tensor) -> str:
    """Explicit argument, else ``onnx`` during ONNX export, else ``$SSS_BI_WKV_BACKEND``, else
    triton on CUDA and torch elsewhere."""
    if not backend and (_EXPORTING or torch.onnx.is_in_onnx_export()):
        return "onnx"
    choice = _requested(backend)
    if choice == "auto":
        return "triton" if x.is_cuda else "torch"
    if choice not in BACKENDS:
        raise ValueError(f"unknown Bi-WKV backend {choice!r}; expected one of {BACKENDS} or 'auto'")
    return choice


def _impl(backend: str, *xs: torch.Tensor) -> ModuleType:
    if backend == "triton" and not any(x.dtype == torch.float64 for x in xs):
        return _triton_module()
    return torch_scan


def _log_dtype(*xs: torch.Tensor) -> torch.dtype:
    return torch.float64 if any(x.dtype == torch.float64 for x in xs) else torch.float32


def _is_half(x: torch.Tensor) -> bool:
    return x.dtype in (torch.float16, torch.bfloat16)


def _contiguous(outs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """The layout contract of both custom ops: the fake implementations below return
    ``new_empty`` (contiguous) tensors and ``torch.compile`` asserts that the real outputs have
    the same strides, so real outputs must be contiguous too. The backends already return
    contiguous tensors; this is a no-op then and a guard against a future backend."""
    return tuple(t.contiguous() for t in outs)


@torch.library.custom_op("sss_nnunet::bi_wkv_fwd", mutates_args=())
def bi_wkv_fwd(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """y (B, T, C) in v's dtype; logD (B, T, C) float32 (float64 for float64 inputs), the
    backend's normalised log-denominator; y_hi: y in float32 if v is half, else empty.
    Every output is contiguous whatever the input strides (as the fake implementation says)."""
    return _contiguous(_impl(backend, w, u, k, v).bi_wkv_forward(w, u, k, v))


@bi_wkv_fwd.register_fake
def _(w, u, k, v, backend):
    y_hi = v.new_empty(v.shape if _is_half(v) else (0,), dtype=torch.float32)
    return v.new_empty(v.shape), k.new_empty(k.shape, dtype=_log_dtype(w, u, k, v)), y_hi


@torch.library.custom_op("sss_nnunet::bi_wkv_bwd", mutates_args=())
def bi_wkv_bwd(
    w: torch.Tensor,
    u: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    y: torch.Tensor,
    logD: torch.Tensor,
    gy: torch.Tensor,
    backend: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dw, du, dk, dv) in the dtypes of (w, u, k, v), contiguous whatever the input strides."""
    return _contiguous(_impl(backend, w, u, k, v).bi_wkv_backward(w, u, k, v, y, logD, gy))


@bi_wkv_bwd.register_fake
def _(w, u, k, v, y, logD, gy, backend):
    return w.new_empty(w.shape), u.new_empty(u.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _setup_context(ctx, inputs, output):
    w, u, k, v, backend = inputs
    y, logD, y_hi = output
    # half inputs: the backward pass uses the float32 y, not its rounded copy
    ctx.save_for_backward(w, u, k, v, y_hi if _is_half(v) else y, logD)
    ctx.backend = backend


def _backward(ctx, gy, _glogD, _gy_hi):
    w, u, k, v, y, logD = ctx.saved_tensors
    dw, du, dk, dv = bi_wkv_bwd(w, u, k, v, y, logD, gy, ctx.backend)
    return dw, du, dk, dv, None


bi_wkv_fwd.register_autograd(_backward, setup_context=_setup_context)


@register_flop_formula(torch.ops.sss_nnunet.bi_wkv_fwd)
def _fwd_flops(w_shape, u_shape, k_shape, *args, **kwargs) -> int:
    B, T, C = k_shape
    return FWD_FLOPS_PER_ELEMENT * B * T * C


@register_flop_formula(torch.ops.sss_nnunet.bi_wkv_bwd)
def _bwd_flops(w_shape, u_shape, k_shape, *args, **kwargs) -> int:
    B, T, C = k_shape
    return BWD_FLOPS_PER_ELEMENT * B * T * C


def _check_shapes(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if k.dim() != 3 or k.shape != v.shape:
        raise ValueError(f"bi_wkv: k and v must both be (B, T, C); got {tuple(k.shape)} and {tuple(v.shape)}")
    C = k.shape[-1]
    if w.shape != (C,) or u.shape != (C,):
        raise ValueError(f"bi_wkv: w and u must be ({C},); got {tuple(w.shape)} and {tuple(u.shape)}")
    for name, x in (("w", w), ("u", u), ("k", k), ("v", v)):
        if not x.is_floating_point():
            raise TypeError(f"bi_wkv: {name} must be a floating-point tensor, got {x.dtype}")


def _dense_pays(w: torch.Tensor, u: torch.Tensor, k: torch.Tensor) -> bool:
    """The automatic choice of ``dense`` over the scan: CPU, eager (reading w is free there and
    the branch would break a traced graph), short sequences with a bounded decay range."""
    return fastpaths.enabled(k) and dense.applies(w, u, k)


def bi_wkv(
    w: torch.Tensor, u: torch.Tensor, k: torch.Tensor, v: torch.Tensor, backend: str | None = None
) -> torch.Tensor:
    """Bidirectional WKV (Vision-RWKV), exact for every T.

    Args:
        w: (C,) decay per token step, already divided by T (any sign).
        u: (C,) bonus of the token itself, already divided by T.
        k, v: (B, T, C) keys and values; float32, float16 or bfloat16 (float32
            accumulation) or float64; any strides.
        backend: naive | torch | dense | triton | onnx | auto (default: ``onnx`` during ONNX export,
            else ``$SSS_BI_WKV_BACKEND`` or auto: triton on CUDA, on the CPU dense where it pays, else torch).
    Returns:
        y: (B, T, C) in v's dtype, differentiable in w, u, k and v.
    """
    _check_shapes(w, u, k, v)
    if k.numel() == 0:
        return v * 0
    auto = _requested(backend) == "auto"
    backend = resolve_backend(backend, k)
    if backend == "torch" and auto and _dense_pays(w, u, k):
        backend = "dense"
    if backend == "dense":
        return dense.bi_wkv_dense(w, u, k, v)
    if backend == "naive":
        return bi_wkv_naive(w, u, k, v)
    if backend == "onnx":
        return bi_wkv_log_scan(w, u, k, v)
    return bi_wkv_fwd(w, u, k, v, backend)[0]
