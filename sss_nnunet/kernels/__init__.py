"""Bi-WKV kernels: ``bi_wkv(w, u, k, v, backend=None)`` with naive, torch and triton backends."""

from sss_nnunet.kernels.dispatch import BACKENDS, ENV_BACKEND, bi_wkv, resolve_backend

__all__ = ["BACKENDS", "ENV_BACKEND", "bi_wkv", "resolve_backend"]
