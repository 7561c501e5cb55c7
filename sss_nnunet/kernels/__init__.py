"""Bi-WKV kernels: ``bi_wkv(w, u, k, v, backend=None)`` with naive, torch, triton and onnx backends."""

from sss_nnunet.kernels.dispatch import BACKENDS, ENV_BACKEND, bi_wkv, onnx_export_mode, resolve_backend

__all__ = ["BACKENDS", "ENV_BACKEND", "bi_wkv", "onnx_export_mode", "resolve_backend"]
