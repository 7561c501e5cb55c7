"""Bi-WKV implementations: ``naive`` (O(T^2) reference), ``torch_scan`` (O(T)), ``triton_kernels`` (GPU)."""
