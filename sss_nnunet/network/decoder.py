"""U-Net decoder of RWKV-SSS: upsample, join the skip, residual conv blocks, segmentation heads."""

from __future__ import annotations

import torch
from torch import nn

from sss_nnunet.network.conv import ConvNormAct, ResidualConvBlock, Upsample
from sss_nnunet.network.fastconv import pointwise_op

SKIPS = ("add", "concat")


class Decoder(nn.Module):
    """Upsample, join the skip, conv blocks, head; ``deep_supervision`` as in nnU-Net.

    ``skip``: ``add`` (up + skip, as UNETR++'s decoder: no extra map of 2C channels and no fusion
    conv at full resolution) or ``concat`` (cat([up, skip]) then a 1x1 conv-norm-act to C).
    """

    def __init__(self, features, kernels, strides, num_classes, dims, ops, upsampler, conv_block, depths,
                 deep_supervision, skip: str = "add"):
        super().__init__()
        if skip not in SKIPS:
            raise ValueError(f"skip must be one of {SKIPS}, got {skip!r}")
        self.deep_supervision, self.skip = deep_supervision, skip
        n = len(features)
        conv_op = ops["conv_op"]
        self.ups, self.fuse, self.blocks, self.heads = (nn.ModuleList() for _ in range(4))
        for s in range(n - 2, -1, -1):  # deepest decoder stage first
            C = features[s]
            self.ups.append(Upsample(features[s + 1], C, strides[s + 1], dims, ops, upsampler))
            self.fuse.append(nn.Identity() if skip == "add" else ConvNormAct(
                conv_op, ops["norm_op"], ops["nonlin"], 2 * C, C, [1] * dims,
                norm_kwargs=ops.get("norm_kwargs"), nonlin_kwargs=ops.get("nonlin_kwargs")))
            self.blocks.append(nn.Sequential(*(ResidualConvBlock(C, kernels[s], ops, conv_block)
                                               for _ in range(depths[s]))))
            self.heads.append(pointwise_op(conv_op)(C, num_classes, 1))

    @staticmethod
    def _match(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
        """Crop or zero-pad x to ref's spatial size (sizes not divisible by the strides)."""
        if x.shape[2:] == ref.shape[2:]:
            return x
        x = x[(slice(None), slice(None)) + tuple(slice(0, s) for s in ref.shape[2:])]
        pads = []
        for have, want in zip(reversed(x.shape[2:]), reversed(ref.shape[2:])):
            pads += [0, want - have]
        return nn.functional.pad(x, pads)

    def forward(self, skips: list[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        x = skips[-1]
        outputs = []
        for i, skip in enumerate(reversed(skips[:-1])):
            x = self._match(self.ups[i](x), skip)  # a fresh map (no backward keeps an upsampler's output)
            x = x.add_(skip) if self.skip == "add" else self.fuse[i](torch.cat([x, skip], 1))
            x = self.blocks[i](x)
            if self.deep_supervision or i == len(self.ups) - 1:
                outputs.append(self.heads[i](x))
        outputs = outputs[::-1]  # highest resolution first
        return outputs if self.deep_supervision else outputs[0]
