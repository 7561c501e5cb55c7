"""RWKV-SSS (Stage Scan Segmentation) for stock nnU-Net v2."""

__version__ = "0.1.0"
