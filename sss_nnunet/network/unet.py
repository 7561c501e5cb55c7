"""RWKV-SSS: a U-shaped 2D/3D segmentation network with Stage-Scan RWKV blocks.

Topology comes from nnU-Net's vocabulary (the plans' ``n_stages``, ``features_per_stage``,
``kernel_sizes``, ``strides``), so whatever ``nnUNetv2_plan_and_preprocess`` chose for a
dataset (anisotropic strides, non-cubic patches) builds directly.

- Encoder stages ``< first_rwkv_stage``: conv stem (stage 0) or a conv with kernel = stride,
  then ``depths[s]`` residual conv blocks (depthwise-separable; none by default: at 10^5..10^6
  voxels every extra pass costs more CPU time than a whole RWKV stage, and the RWKV stages
  bring the context, as the patch embedding of UNETR++).
- Encoder stages ``>= first_rwkv_stage``: conv with kernel = stride, then ``depths[s]``
  Stage-Scan blocks (global mix over ``global_windows[s]`` windows, local mix inside
  ``local_windows[s]`` windows, channel mix).
- Decoder, per stage: upsample (DySample or transposed conv), concatenate the skip, a 1x1
  fusion conv-norm-act and ``decoder_depths[s]`` residual conv blocks (default: none at the
  conv-stage resolutions, one below); a 1x1 segmentation head on every decoder stage.

Deep supervision as nnU-Net expects: a list of logits, highest resolution first, one per
decoder stage; a single tensor when ``decoder.deep_supervision`` is False.
Shapes: input (B, input_channels, *S), S = (D, H, W) or (H, W) in voxels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sss_nnunet.network.conv import ConvNormAct, ResidualConvBlock, Upsample
from sss_nnunet.network.ops import as_tuple, dims_of, instance_norm
from sss_nnunet.network.rwkv import StageScanBlock

SCAN_MODES = ("raster", "zigzag", "stage")
SHIFT_MODES = ("none", "qshift4", "stage")
UPSAMPLERS = ("transposed", "dysample")


def scan_orders(mode: str, dims: int) -> tuple[list[tuple[int, ...]], bool]:
    """Scan orders (axes slowest first) and snake flag of a scan mode.

    raster: one raster order (D, H, W); zigzag: the same as a snake; stage: the snake in two
    axis orders, (D, H, W) and its reverse (W, H, D), mixed by stage-dependent weights.
    """
    forward = tuple(range(dims))
    if mode == "raster":
        return [forward], False
    if mode == "zigzag":
        return [forward], True
    if mode == "stage":
        return [forward, forward[::-1]], True
    raise ValueError(f"unknown scan mode {mode!r}; expected one of {SCAN_MODES}")


def stage_scan(orders: list[tuple[int, ...]], r: int, n_rwkv: int) -> tuple[list[tuple[int, ...]], list[float]]:
    """Scan orders of RWKV stage r (0 = first RWKV stage) and their initial softmax logits.

    With two orders the weight moves from the first, (D, H, W), at the first RWKV stage to
    the reverse, (W, H, D), at the deepest; the dominant order is listed first, and the
    direction-aware shift follows it (it skips that order's fastest axis).
    """
    if len(orders) == 1:
        return orders, [0.0]
    tilt = 1.0 - 2.0 * r / max(n_rwkv - 1, 1)
    ordered = orders if tilt >= 0 else orders[::-1]
    return ordered, [abs(tilt), -abs(tilt)]


def _per_stage(value, n: int, name: str) -> list:
    if isinstance(value, (int, float)) or value is None:
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} needs one value per stage ({n}), got {value}")
    return value


class Decoder(nn.Module):
    """Upsample, fuse with the skip, conv block, head; ``deep_supervision`` as in nnU-Net."""

    def __init__(self, features, kernels, strides, num_classes, dims, ops, upsampler, conv_block, depths,
                 deep_supervision):
        super().__init__()
        self.deep_supervision = deep_supervision
        n = len(features)
        conv_op = ops["conv_op"]
        self.ups, self.fuse, self.blocks, self.heads = (nn.ModuleList() for _ in range(4))
        for s in range(n - 2, -1, -1):  # deepest decoder stage first
            C = features[s]
            self.ups.append(Upsample(features[s + 1], C, strides[s + 1], dims, ops, upsampler))
            self.fuse.append(ConvNormAct(conv_op, ops["norm_op"], ops["nonlin"], 2 * C, C, [1] * dims,
                                         norm_kwargs=ops.get("norm_kwargs"),
                                         nonlin_kwargs=ops.get("nonlin_kwargs")))
            self.blocks.append(nn.Sequential(*(ResidualConvBlock(C, kernels[s], ops, conv_block)
                                               for _ in range(depths[s]))))
            self.heads.append(conv_op(C, num_classes, 1))

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
            x = self._match(self.ups[i](x), skip)
            x = self.blocks[i](self.fuse[i](torch.cat([x, skip], 1)))
            if self.deep_supervision or i == len(self.ups) - 1:
                outputs.append(self.heads[i](x))
        outputs = outputs[::-1]  # highest resolution first
        return outputs if self.deep_supervision else outputs[0]


class RWKVSSS(nn.Module):
    """RWKV-SSS U-Net.

    Args (nnU-Net vocabulary):
        input_channels, num_classes, n_stages, features_per_stage, conv_op (nn.Conv2d or
        nn.Conv3d), kernel_sizes, strides (per stage; stage 0 usually 1), deep_supervision.
        norm_op / norm_op_kwargs / nonlin / nonlin_kwargs: for the conv blocks (default
        InstanceNorm + LeakyReLU as in nnU-Net). Other nnU-Net keys (n_conv_per_stage,
        conv_bias, dropout_op, ...) are accepted and ignored.
    Args (RWKV-SSS; each has a default):
        first_rwkv_stage: first encoder stage made of Stage-Scan blocks (default min(2, n-1)).
        depths: blocks per encoder stage (default 0 in the conv stages, which only embed and
            downsample, 2 at the two deepest stages, 1 elsewhere).
        decoder_depths: residual conv blocks after the fusion, per decoder stage (indexed by
            the encoder stage it joins; default 0 above the first RWKV stage, 1 from there).
        global_windows / local_windows: windows along the longest axis for the global and the
            local mix of each stage (default halving with depth down to 1; local = 2x global).
        scan: raster | zigzag | stage.   shift: none | qshift4 | stage.
        wkv_pool: k/v pooling factor per stage (default 2 at the first RWKV stage, then 1);
            ``pooled_wkv=False`` sets all to 1.
        upsampler: transposed | dysample.
        drop_path: maximal stochastic-depth rate (linear over RWKV blocks).
        layer_scale: initial layer-scale value, or None for no layer scale.
        mlp_ratio: hidden width of the channel mix in units of C.
        conv_block: separable | plain.
        stem_features: width of stage 0 when it runs at full resolution (stride 1), where
            every pass over the map is expensive; default min(features_per_stage[0], 16), as
            UNETR++'s full-resolution stage. Deeper stages keep the plans' widths.
    """

    def __init__(
        self,
        input_channels: int,
        num_classes: int,
        n_stages: int,
        features_per_stage: int | Sequence[int],
        conv_op: type[nn.Module],
        kernel_sizes: int | Sequence[int | Sequence[int]],
        strides: int | Sequence[int | Sequence[int]],
        deep_supervision: bool = False,
        first_rwkv_stage: int | None = None,
        depths: Sequence[int] | None = None,
        decoder_depths: Sequence[int] | None = None,
        global_windows: Sequence[int] | None = None,
        local_windows: Sequence[int] | None = None,
        scan: str = "stage",
        shift: str = "stage",
        pooled_wkv: bool = True,
        wkv_pool: Sequence[int] | None = None,
        upsampler: str = "dysample",
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        mlp_ratio: float = 4.0,
        conv_block: str = "separable",
        stem_features: int | None = None,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        **_nnunet_kwargs,
    ):
        super().__init__()
        dims = dims_of(conv_op)
        n = n_stages
        if scan not in SCAN_MODES or shift not in SHIFT_MODES or upsampler not in UPSAMPLERS:
            raise ValueError(f"scan/shift/upsampler must be in {SCAN_MODES}/{SHIFT_MODES}/{UPSAMPLERS}")
        features = [int(f) for f in _per_stage(features_per_stage, n, "features_per_stage")]
        kernels = [as_tuple(k, dims) for k in _per_stage(kernel_sizes, n, "kernel_sizes")]
        strides_ = [as_tuple(s, dims) for s in _per_stage(strides, n, "strides")]
        if all(st == 1 for st in strides_[0]):
            features[0] = int(stem_features) if stem_features is not None else min(features[0], 16)
        first = min(2, n - 1) if first_rwkv_stage is None else int(first_rwkv_stage)
        if not 0 <= first <= n:
            raise ValueError(f"first_rwkv_stage must be in [0, {n}], got {first}")
        n_rwkv = n - first
        if depths is None:
            depths = [0 if s < first else 2 if s >= max(n - 2, 1) else 1 for s in range(n)]
        depths = list(depths)
        if decoder_depths is None:
            decoder_depths = [0 if s < first else 1 for s in range(n)]
        decoder_depths = list(decoder_depths) + [0] * (n - len(decoder_depths))
        if global_windows is None:
            global_windows = [0] * first + [2 ** max(n_rwkv - 2 - r, 0) for r in range(n_rwkv)]
        if local_windows is None:
            local_windows = [0] * first + [2 * g if g > 1 or r < n_rwkv - 1 else 1
                                           for r, g in enumerate(global_windows[first:])]
        if wkv_pool is None:
            wkv_pool = [1] * n if n_rwkv == 0 else [1] * first + [2] + [1] * (n_rwkv - 1)
        if not pooled_wkv:
            wkv_pool = [1] * n
        per_stage = dict(depths=depths, decoder_depths=decoder_depths, global_windows=global_windows,
                         local_windows=local_windows, wkv_pool=wkv_pool)
        for name, value in per_stage.items():
            _per_stage(value, n, name)
        ops = dict(conv_op=conv_op, norm_op=norm_op or instance_norm(dims), norm_kwargs=norm_op_kwargs,
                   nonlin=nonlin or nn.LeakyReLU, nonlin_kwargs=nonlin_kwargs)
        orders, snake = scan_orders(scan, dims)
        n_blocks = sum(depths[first:])
        rates = torch.linspace(0, drop_path, max(n_blocks, 1)).tolist()

        self.config = dict(features=features, first_rwkv_stage=first, depths=depths,
                           decoder_depths=decoder_depths, global_windows=list(global_windows),
                           local_windows=list(local_windows), scan=scan, shift=shift, wkv_pool=list(wkv_pool),
                           upsampler=upsampler, conv_block=conv_block, mlp_ratio=mlp_ratio)
        self.encoder = nn.ModuleList()
        block_id = 0
        for s in range(n):
            c_in = input_channels if s == 0 else features[s - 1]
            C = features[s]
            if s == 0:
                layers = [ConvNormAct(conv_op, ops["norm_op"], ops["nonlin"], c_in, C, kernels[0],
                                      norm_kwargs=norm_op_kwargs, nonlin_kwargs=nonlin_kwargs)]
                if any(st > 1 for st in strides_[0]):
                    layers.append(conv_op(C, C, strides_[0], stride=strides_[0]))
            else:
                layers = [ConvNormAct(conv_op, ops["norm_op"], ops["nonlin"], c_in, C, strides_[s],
                                      stride=strides_[s], norm_kwargs=norm_op_kwargs,
                                      nonlin_kwargs=nonlin_kwargs)]
            for _ in range(depths[s]):
                if s < first:
                    layers.append(ResidualConvBlock(C, kernels[s], ops, conv_block))
                    continue
                stage_orders, bias = stage_scan(orders, s - first, n_rwkv)
                layers.append(StageScanBlock(
                    C, dims, global_windows[s], local_windows[s], stage_orders, snake, shift, wkv_pool[s],
                    mlp_ratio, layer=(block_id, n_blocks), order_bias=bias,
                    drop_path=rates[block_id], layer_scale=layer_scale,
                ))
                block_id += 1
            self.encoder.append(nn.Sequential(*layers))
        self.decoder = Decoder(features, kernels, strides_, num_classes, dims, ops, upsampler, conv_block,
                               decoder_depths, deep_supervision)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        return self.decoder(skips)
