"""Scan-attention maps of RWKV-SSS: what each Stage-Scan block attends to (``sss-nnunet attention``)."""
