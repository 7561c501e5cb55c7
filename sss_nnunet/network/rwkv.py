"""RWKV blocks of RWKV-SSS, re-exported from their modules (the import path other code uses).

- ``scan``: scan orders, the stage schedule of their gate logits, ``ScanGate``;
- ``shift``: the direction-aware token shift;
- ``mixes``: ``SpatialMix`` (Bi-WKV over windows) and ``ChannelMix``;
- ``block``: ``StageScanBlock``.
"""

from sss_nnunet.network.block import MIXES, SHIFT_INPUTS, StageScanBlock
from sss_nnunet.network.mixes import DECAY_SCALES, PAD_KEY, ChannelMix, SpatialMix
from sss_nnunet.network.scan import SCAN_MODES, SCAN_WEIGHTS, ScanGate, scan_orders, stage_scan_bias
from sss_nnunet.network.shift import (
    SHIFT_MODES,
    Orders,
    axis_shares,
    direction_weights,
    directional_shift,
    qshift4_shares,
    qshift_shares,
    shift_directions,
)
from sss_nnunet.network.windows import WindowGrid, border_mask, cached, multi_scan, small_tensor, stage_partition

__all__ = [
    "DECAY_SCALES", "MIXES", "PAD_KEY", "SCAN_MODES", "SCAN_WEIGHTS", "SHIFT_INPUTS", "SHIFT_MODES", "ChannelMix",
    "Orders", "ScanGate", "SpatialMix", "StageScanBlock", "WindowGrid", "axis_shares", "border_mask", "cached",
    "direction_weights", "directional_shift", "multi_scan", "qshift4_shares", "qshift_shares", "scan_orders",
    "shift_directions", "small_tensor", "stage_partition", "stage_scan_bias",
]
