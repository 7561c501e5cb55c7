"""RWKV-SSS network: ``RWKVSSS`` (U-Net), its Stage-Scan blocks, DySample and window scans."""

from sss_nnunet.network.unet import RWKVSSS, SCAN_MODES, SHIFT_MODES, UPSAMPLERS

__all__ = ["RWKVSSS", "SCAN_MODES", "SHIFT_MODES", "UPSAMPLERS"]
