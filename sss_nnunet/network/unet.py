"""RWKV-SSS: a U-shaped 2D/3D segmentation network with Stage-Scan RWKV blocks.

Topology comes from nnU-Net's vocabulary (the plans' ``n_stages``, ``features_per_stage``,
``kernel_sizes``, ``strides``), so whatever ``nnUNetv2_plan_and_preprocess`` chose for a
dataset (anisotropic strides, non-cubic patches) builds directly.

- Encoder stages ``< first_rwkv_stage`` (the full- and half-resolution levels): a conv stem
  (stage 0, plans' kernel) or a conv with kernel = stride, then ``depths[s]`` residual conv
  blocks with the plans' kernel sizes (nnU-Net's residual encoder, depthwise-separable by
  default, see ``conv.ResidualConvBlock``).
- Encoder stages ``>= first_rwkv_stage``: conv with kernel = stride, an optional depthwise
  positional conv (``pos_embed``), then ``depths[s]`` Stage-Scan blocks.
- Decoder, per stage: upsample (DySample or transposed conv), add the skip (or concatenate
  and fuse with a 1x1 conv-norm-act: ``skip``) and ``decoder_depths[s]`` residual conv
  blocks (default one at EVERY decoder level, as UNETR++); a 1x1 segmentation head on every decoder stage.

Deep supervision as nnU-Net expects: a list of logits, highest resolution first, one per
decoder stage; a single tensor when ``decoder.deep_supervision`` is False.
Shapes: input (B, input_channels, *S), S = (D, H, W) or (H, W) in voxels.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from sss_nnunet.network.conv import ConvNormAct, PositionConv, ResidualConvBlock
from sss_nnunet.network.decoder import SKIPS, Decoder
from sss_nnunet.network.ops import as_tuple, channels_last_on_cpu, dims_of, fast_norm, instance_norm
from sss_nnunet.network.rwkv import (
    DECAY_SCALES,
    MIXES,
    SCAN_MODES,
    SCAN_WEIGHTS,
    SHIFT_INPUTS,
    SHIFT_MODES,
    SpatialMix,
    StageScanBlock,
    scan_orders,
    stage_scan_bias,
)

UPSAMPLERS = ("transposed", "dysample")
# nnU-Net architecture keys (PlainConvUNet / ResidualEncoderUNet / ResidualUNet plans) that describe
# nnU-Net's own conv blocks: accepted so that stock plans build, and not used.
NNUNET_KEYS = frozenset({
    "n_conv_per_stage", "n_conv_per_stage_decoder", "n_blocks_per_stage", "conv_bias", "dropout_op",
    "dropout_op_kwargs", "nonlin_first", "block", "bottleneck_channels", "stem_channels", "pool_type",
})


def _per_stage(value, n: int, name: str) -> list:
    if isinstance(value, (int, float)) or value is None:
        return [value] * n
    value = list(value)
    if len(value) != n:
        raise ValueError(f"{name} needs one value per stage ({n}), got {value}")
    return value


class RWKVSSS(nn.Module):
    """RWKV-SSS U-Net.

    Args (nnU-Net vocabulary):
        input_channels, num_classes, n_stages, features_per_stage, conv_op (nn.Conv2d or
        nn.Conv3d), kernel_sizes, strides (per stage; stage 0 usually 1), deep_supervision.
        norm_op / norm_op_kwargs / nonlin / nonlin_kwargs: for the conv blocks (default
        InstanceNorm + LeakyReLU as in nnU-Net; instance norms are computed by
        ``ops.InstanceNormByGroups``, the same function, faster on the CPU). nnU-Net's own block keys (``NNUNET_KEYS``:
        n_conv_per_stage, n_blocks_per_stage, conv_bias, dropout_op, ...) are accepted and
        unused; any other unknown key is an error naming it (a typo in the plans must not
        silently train another network).
    Args (RWKV-SSS; each has a default, each ablation is one argument):
        first_rwkv_stage: first encoder stage made of Stage-Scan blocks (default min(2, n-1));
            1 is affordable because pooled WKV shrinks that stage's sequences (``wkv_pool``), but
            measured lower on the context set at 1.48x the training memory (``SSSTrainer_firstRWKV1``).
        depths: blocks per encoder stage: residual conv blocks before ``first_rwkv_stage``
            (default 1), Stage-Scan blocks from there (default 2 at the two deepest stages, 1
            elsewhere).
        decoder_depths: residual conv blocks after the fusion, per decoder stage (indexed by
            the encoder stage it joins; default 1 everywhere).
        global_splits: bisections of each RWKV stage's (pooled) map into global windows (default
            n_rwkv - 1 - r at RWKV stage r: the deepest stage one window, the count doubling per
            stage upwards, so no two RWKV stages share a partition); local windows are the global
            ones bisected further to at most ``local_tokens`` tokens (default 64, constant over
            stages; why: ``windows.stage_windows``).
        global_windows / local_windows: legacy per-stage window counts along the longest axis
            (``windows.stage_partition``); when both are given they replace the schedule above.
        min_window_tokens: legacy partition only (default 16 in 2D, 32 in 3D).
        scan: raster | zigzag | stage (default: the dims cyclic snake orders, weighted per sample).
        scan_weights: dynamic (gate on pooled features + per-stage bias, default) | static
            (per-stage learned bias only) | uniform (equal, fixed: not stage-dependent). Measured:
            static ties dynamic at the same cost, uniform is lower (single-seed runs); the ladder's
            dynamic-gate rung was behind the rung below it on the 3D context set (-0.088 [-0.156,
            -0.019], 3 seeds), one set: by issue 23's rule (two sets) the paper's gate stays.
        shift: none | qshift4 (Vision-RWKV's Q-Shift: every axis of size > 1 an equal share, in 3D
            all six directions) | stage (default: every axis both ways, shares from the weighted scan).
        shift_input: mix (default: each sub-block shifts its own normalised input, as Vision-RWKV and
            Zig-RiR) | block (one shift of the block's first normalised input shared by all sub-blocks).
        decay_scale: sequence (default, Vision-RWKV: decay / sequence length) | window (the global
            mix's decay / window volume, Zig-RiR's inner RWKV: the window-major scan order then
            decides which tokens weigh; ablation ``SSSTrainer_decayWindow``).
        mixes: both (default, the paper's Stage-Scan block: a global window-major Bi-WKV mix and a
            local mix on the finer windows) | global | local (ablations ``SSSTrainer_globalOnly`` /
            ``SSSTrainer_localOnly``). Why ``both``: it is the paper's design, and removing the local
            mix (``SSSTrainer_globalOnly``, one recipe, 3 seeds, paired against ``both``, 2026-12-06/07)
            tied on every set: 3D context +0.033 [-0.000, +0.083] (AdamW) and +0.053 [-0.132, +0.212]
            (SGD), demo -0.000 [-0.004, +0.003], MNI152 +0.001 [-0.000, +0.002]; the ladder's local-mix
            rung against the rung below it -0.052 [-0.168, +0.033] (3D context). Issue 23's rule turns
            a mechanism off only where its removal is better on two sets (docs/results.md). It costs
            parameters (one more SpatialMix per block: ``benchmarks/bench_network.py --counts-only``).
        wkv_pool: k/v pooling factor per stage (default 2^(3-s) at RWKV stage s, at least 1:
            4 at stage 1, 2 at stage 2, then 1); ``pooled_wkv=False`` sets all to 1.
        pos_embed: residual depthwise-conv position signal at the start of every RWKV stage
            (default off: measured lower on both comparison sets, docs/results.md,
            ``SSSTrainer_posEmbed``; the direction-aware shift and the conv skips carry position).
        upsampler: transposed | dysample.
        drop_path: maximal stochastic-depth rate (linear over RWKV blocks).
        layer_scale: initial layer-scale value, or None for no layer scale.
        mlp_ratio: hidden width of the channel mix in units of C.
        conv_block: separable (default) | plain. Measured reason (benchmarks/bench_network.py,
            1x1x64x128x128): one nnU-Net conv-norm-act x2 block at 32 channels over the
            full-resolution map costs 2 x 28 GMAC, more than the whole 48 G budget; the separable
            block (depthwise k conv, norm, act, pointwise conv, norm, + x, act) costs ~2 GMAC there
            and keeps every level's capacity, so stage 0 keeps the plans' width.
        skip: add (default, UNETR++'s decoder: upsampled map + skip, then the conv blocks) |
            concat (concatenate, 1x1 conv-norm-act back to C). Measured reason for the default:
            docs/results.md (ablation ``SSSTrainer_skipConcat``).
        stem_features: width of stage 0 (default: the plans' features_per_stage[0]).

    ``set_scan(mode)`` switches every SpatialMix's scan in place (weights untouched): raster or
    zigzag (one D-H-W order, the gate ignored) or stage (the stage's orders and gate again).
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
        global_windows: int | Sequence[int] | None = None,
        local_windows: int | Sequence[int] | None = None,
        global_splits: int | Sequence[int] | None = None,
        local_tokens: int = 64,
        shift_input: str = "mix",
        decay_scale: str = "sequence",
        min_window_tokens: int | None = None,
        scan: str = "stage",
        scan_weights: str = "dynamic",
        shift: str = "stage",
        mixes: str = "both",
        pooled_wkv: bool = True,
        wkv_pool: Sequence[int] | None = None,
        pos_embed: bool = False,
        upsampler: str = "dysample",
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        mlp_ratio: float = 4.0,
        conv_block: str = "separable",
        skip: str = "add",
        stem_features: int | None = None,
        norm_op: type[nn.Module] | None = None,
        norm_op_kwargs: dict | None = None,
        nonlin: type[nn.Module] | None = None,
        nonlin_kwargs: dict | None = None,
        **nnunet_kwargs,
    ):
        super().__init__()
        unknown = sorted(set(nnunet_kwargs) - NNUNET_KEYS)
        if unknown:
            raise TypeError(f"RWKVSSS got unknown argument(s) {', '.join(map(repr, unknown))}: neither an RWKV-SSS "
                            f"argument nor one of nnU-Net's architecture keys ({', '.join(sorted(NNUNET_KEYS))})")
        dims = dims_of(conv_op)
        n = n_stages
        for name, value, allowed in (("scan", scan, SCAN_MODES), ("shift", shift, SHIFT_MODES),
                                     ("upsampler", upsampler, UPSAMPLERS), ("scan_weights", scan_weights, SCAN_WEIGHTS),
                                     ("mixes", mixes, MIXES), ("conv_block", conv_block, ("separable", "plain")),
                                     ("skip", skip, SKIPS), ("shift_input", shift_input, SHIFT_INPUTS),
                                     ("decay_scale", decay_scale, DECAY_SCALES)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        features = [int(f) for f in _per_stage(features_per_stage, n, "features_per_stage")]
        kernels = [as_tuple(k, dims) for k in _per_stage(kernel_sizes, n, "kernel_sizes")]
        strides_ = [as_tuple(s, dims) for s in _per_stage(strides, n, "strides")]
        if stem_features is not None:
            features[0] = int(stem_features)
        first = min(2, n - 1) if first_rwkv_stage is None else int(first_rwkv_stage)
        if not 0 <= first <= n:
            raise ValueError(f"first_rwkv_stage must be in [0, {n}], got {first}")
        n_rwkv = n - first
        if depths is None:
            depths = [1 if s < first else 2 if s >= max(n - 2, 1) else 1 for s in range(n)]
        depths = list(depths)
        if decoder_depths is None:
            decoder_depths = [1] * n
        decoder_depths = list(decoder_depths) + [0] * (n - len(decoder_depths))
        if isinstance(global_windows, (list, tuple)) and all(g is None for g in global_windows):
            global_windows = None  # plans written from a schedule network's config
        if isinstance(local_windows, (list, tuple)) and all(g is None for g in local_windows):
            local_windows = None
        legacy_windows = global_windows is not None and local_windows is not None
        if legacy_windows:
            global_windows = _per_stage(global_windows, n, "global_windows")
            local_windows = _per_stage(local_windows, n, "local_windows")
        elif global_windows is not None or local_windows is not None:
            raise ValueError("global_windows and local_windows (legacy partition) must be given together")
        else:
            global_windows = local_windows = [None] * n
        if global_splits is None:
            global_splits = [0] * first + [n_rwkv - 1 - r for r in range(n_rwkv)]
        global_splits = [int(g) for g in _per_stage(global_splits, n, "global_splits")]
        if min_window_tokens is None:
            min_window_tokens = 16 if dims == 2 else 32
        if wkv_pool is None:
            wkv_pool = [1 if s < first else 2 ** max(3 - s, 0) for s in range(n)]
        if not pooled_wkv:
            wkv_pool = [1] * n
        for name, value in dict(depths=depths, decoder_depths=decoder_depths, wkv_pool=wkv_pool).items():
            _per_stage(value, n, name)
        ops = dict(conv_op=conv_op, norm_op=fast_norm(norm_op or instance_norm(dims), norm_op_kwargs),
                   norm_kwargs=norm_op_kwargs,
                   nonlin=nonlin or nn.LeakyReLU, nonlin_kwargs=nonlin_kwargs)
        orders, snake = scan_orders(scan, dims)
        n_blocks = sum(depths[first:])
        rates = torch.linspace(0, drop_path, max(n_blocks, 1)).tolist()

        self.config = dict(features=features, first_rwkv_stage=first, depths=depths,
                           decoder_depths=decoder_depths,
                           global_windows=list(global_windows) if legacy_windows else None,
                           local_windows=list(local_windows) if legacy_windows else None,
                           global_splits=global_splits, local_tokens=int(local_tokens), shift_input=shift_input,
                           decay_scale=decay_scale, min_window_tokens=int(min_window_tokens), scan=scan,
                           scan_weights=scan_weights, shift=shift, mixes=mixes, wkv_pool=list(wkv_pool),
                           pos_embed=pos_embed, upsampler=upsampler, conv_block=conv_block, skip=skip,
                           mlp_ratio=mlp_ratio)
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
            if s >= first and pos_embed:
                layers.append(PositionConv(C, kernels[s], conv_op))
            for _ in range(depths[s]):
                if s < first:
                    layers.append(ResidualConvBlock(C, kernels[s], ops, conv_block))
                    continue
                layers.append(StageScanBlock(
                    C, dims, global_windows[s], local_windows[s], orders, snake, shift, wkv_pool[s],
                    mlp_ratio, layer=(block_id, n_blocks), order_bias=stage_scan_bias(
                        len(orders), s - first, n_rwkv, 0.0 if scan_weights == "uniform" else 1.0),
                    drop_path=rates[block_id], layer_scale=layer_scale, scan_weights=scan_weights,
                    min_tokens=int(min_window_tokens), mixes=mixes, global_splits=global_splits[s],
                    local_tokens=int(local_tokens), shift_input=shift_input, decay_scale=decay_scale,
                ))
                block_id += 1
            self.encoder.append(nn.Sequential(*layers))
        self.decoder = Decoder(features, kernels, strides_, num_classes, dims, ops, upsampler, conv_block,
                               decoder_depths, deep_supervision, skip)

    def set_scan(self, mode: str) -> None:
        """Switch every SpatialMix's scan in place: raster | zigzag (one D-H-W order, the scan
        gate ignored) | stage (the stage's orders, weighted by the gate). Weights untouched."""
        if mode not in SCAN_MODES:
            raise ValueError(f"unknown scan mode {mode!r}; expected one of {SCAN_MODES}")
        for m in self.modules():
            if isinstance(m, SpatialMix):
                m.set_scan(mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        """(B, input_channels, *S) -> logits (B, num_classes, *S) (a list under deep supervision).
        On the CPU every map is channels-last (``ops.channels_last_on_cpu``): the logits too."""
        x = channels_last_on_cpu(x)
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        return self.decoder(skips)
