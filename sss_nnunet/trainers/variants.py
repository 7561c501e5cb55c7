"""SSSTrainer variants a researcher expects: short runs and one trainer per ablation switch.

Names follow nnU-Net's ``nnUNetTrainer_Xepochs`` style and never contain ``__`` (nnU-Net
splits result-folder names on it). Renaming a trainer orphans its checkpoints: keep names.
Variants only set class attributes: nnU-Net records ``__init__``'s exact signature.
"""

from __future__ import annotations

from sss_nnunet.trainers.sss_trainer import SSSTrainer


class SSSTrainer_1epoch(SSSTrainer):
    epochs = 1


class SSSTrainer_5epochs(SSSTrainer):
    epochs = 5


class SSSTrainer_50epochs(SSSTrainer):
    epochs = 50


class SSSTrainer_250epochs(SSSTrainer):
    epochs = 250


class SSSTrainer_demo(SSSTrainer):
    """The ``sss-nnunet demo`` run on the built-in synthetic dataset (about 9 minutes of training on
    2 CPU cores): 22 epochs of 25 iterations, a higher peak learning rate for the short schedule."""

    learning_rate = 2e-3
    epochs = 22
    iterations_per_epoch = 25
    val_iterations_per_epoch = 2


class SSSTrainer_tiny(SSSTrainer):
    """For tests: 2 iterations per epoch, 1 validation iteration, checkpoint every epoch.
    ``SSS_TINY_EPOCHS`` (default 1) sets the epoch count, so ``--c`` can extend a run."""

    epochs = 1
    epochs_env = "SSS_TINY_EPOCHS"
    iterations_per_epoch = 2
    val_iterations_per_epoch = 1
    checkpoint_every = 1


# ----------------------------------------------------------------------- ablation switches
class SSSTrainer_scanRaster(SSSTrainer):
    network_overrides = {"scan": "raster"}


class SSSTrainer_scanZigzag(SSSTrainer):
    network_overrides = {"scan": "zigzag"}


class SSSTrainer_shiftNone(SSSTrainer):
    network_overrides = {"shift": "none"}


class SSSTrainer_shiftQShift4(SSSTrainer):
    network_overrides = {"shift": "qshift4"}


class SSSTrainer_noPooledWKV(SSSTrainer):
    network_overrides = {"pooled_wkv": False}


class SSSTrainer_transposedUp(SSSTrainer):
    network_overrides = {"upsampler": "transposed"}


class SSSTrainer_skipConcat(SSSTrainer):
    """Decoder joins the skip by concatenation and a 1x1 conv-norm-act (instead of adding it)."""

    network_overrides = {"skip": "concat"}


class SSSTrainer_scanWeightsStatic(SSSTrainer):
    """Stage-dependent learned scan weights without the input-dependent gate."""

    network_overrides = {"scan_weights": "static"}


class SSSTrainer_scanWeightsUniform(SSSTrainer):
    """Equal, fixed weights of the scan orders at every stage (not stage-dependent, not learned)."""

    network_overrides = {"scan_weights": "uniform"}


class SSSTrainer_globalOnly(SSSTrainer):
    """Stage-Scan blocks without the local mix (global window-major mix and channel mix). The same
    network as ``SSSTrainer`` since ``mixes="global"`` became the default (docs/results.md); kept so
    the ablation runs in docs/results.md can be reproduced by name."""

    network_overrides = {"mixes": "global"}


class SSSTrainer_bothMixes(SSSTrainer):
    """The paper's Stage-Scan block: global window-major mix, then a local mix on the finer windows."""

    network_overrides = {"mixes": "both"}


class SSSTrainer_localOnly(SSSTrainer):
    """Stage-Scan blocks without the global mix (local windows and channel mix)."""

    network_overrides = {"mixes": "local"}


class SSSTrainer_firstRWKV1(SSSTrainer):
    """RWKV from encoder stage 1 (k/v pooled by 4 there) instead of stage 2."""

    network_overrides = {"first_rwkv_stage": 1}


class SSSTrainer_posEmbed(SSSTrainer):
    """With the depthwise-conv position signal at the start of every RWKV stage."""

    network_overrides = {"pos_embed": True}


class SSSTrainer_VRWKV(SSSTrainer):
    """Plain Vision-RWKV baseline in the same U-Net: one global raster scan over the whole map, Q-Shift
    (four in-plane directions), no pooled WKV, no local mix, transposed-conv upsampling."""

    network_overrides = {"scan": "raster", "shift": "qshift4", "pooled_wkv": False, "upsampler": "transposed",
                         "mixes": "global", "global_windows": 1}
