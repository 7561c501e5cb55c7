"""RWKV-SSS network: ``RWKVSSS`` (U-Net), its Stage-Scan blocks, DySample and window scans."""

from sss_nnunet.network.rwkv import MIXES, SCAN_MODES, SCAN_WEIGHTS, SHIFT_MODES
from sss_nnunet.network.unet import NNUNET_KEYS, RWKVSSS, SKIPS, UPSAMPLERS

__all__ = ["MIXES", "NNUNET_KEYS", "RWKVSSS", "SCAN_MODES", "SCAN_WEIGHTS", "SHIFT_MODES", "SKIPS", "UPSAMPLERS"]
