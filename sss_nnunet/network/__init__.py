"""RWKV-SSS network: ``RWKVSSS`` (U-Net), its Stage-Scan blocks, DySample and window scans.

The tuples name the allowed values of ``RWKVSSS``'s string switches (tests enumerate them)."""

from sss_nnunet.network.block import SHIFT_INPUTS
from sss_nnunet.network.mixes import DECAY_SCALES
from sss_nnunet.network.rwkv import MIXES, SCAN_MODES, SCAN_WEIGHTS, SHIFT_MODES
from sss_nnunet.network.unet import NNUNET_KEYS, RWKVSSS, SKIPS, UPSAMPLERS

__all__ = ["DECAY_SCALES", "MIXES", "NNUNET_KEYS", "RWKVSSS", "SCAN_MODES", "SCAN_WEIGHTS", "SHIFT_INPUTS",
           "SHIFT_MODES", "SKIPS", "UPSAMPLERS"]
