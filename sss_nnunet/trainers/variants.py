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
    """Ablation: Stage-Scan blocks without the local mix (global window-major mix and channel mix).
    It was the default until ``mixes="both"`` (the paper's block) became it again: the earlier
    choice rested on two-seed runs on plans whose global partition was one window at every RWKV
    stage, not on an interval-backed comparison."""

    network_overrides = {"mixes": "global"}


class SSSTrainer_bothMixes(SSSTrainer):
    """The paper's Stage-Scan block (global window-major mix, then a local mix on the finer windows):
    the default network since ``mixes="both"`` is the default; the name is kept so earlier runs
    can be reproduced by name (the same network as ``SSSTrainer``)."""

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


class SSSTrainer_decayWindow(SSSTrainer):
    """The global mix's decay and bonus divided by the window volume instead of the sequence length
    (Zig-RiR's inner-RWKV scaling): weights fall over one window, so the scan order matters there."""

    network_overrides = {"decay_scale": "window"}


class SSSTrainer_shiftShared(SSSTrainer):
    """One token shift per block (of the block's first normalised input) shared by the global, local
    and channel mixes, instead of each sub-block shifting its own normalised input (Vision-RWKV)."""

    network_overrides = {"shift_input": "block"}


# ----------------------------------------------------------------------- the ablation ladder
# One network switch per rung, each rung the previous plus one mechanism of the paper; the rung
# after L6 (+ DySample) is SSSTrainer itself. tests/network/test_ablation_trainers.py checks it.
class SSSTrainer_L0(SSSTrainer):
    """Ladder rung 0: plain Vision-RWKV in the same U-Net. One raster scan over the whole map (one
    global window), Q-Shift over every axis (3D: all six directions), only the global mix, no pooled
    WKV, transposed-conv upsampling; ``scan_weights="static"`` is inert here (one order) and makes
    rung 5's switch the dynamic gate alone."""

    network_overrides = {"scan": "raster", "scan_weights": "static", "global_splits": 0, "mixes": "global",
                         "shift": "qshift4", "pooled_wkv": False, "upsampler": "transposed"}


def _rung(parent: type[SSSTrainer], switch: str) -> dict:
    """The parent's overrides without ``switch`` (the rung's one change: that switch's default)."""
    overrides = dict(parent.network_overrides)
    del overrides[switch]
    return overrides


class SSSTrainer_L1(SSSTrainer_L0):
    """Ladder rung 1 = L0 + stage scan orders (``scan="stage"``: the dims cyclic snake orders,
    stage-dependent learned static weights)."""

    network_overrides = _rung(SSSTrainer_L0, "scan")


class SSSTrainer_L2(SSSTrainer_L1):
    """Ladder rung 2 = L1 + global windows (``global_splits`` default: the window schedule, the
    number of windows falling stage by stage to one at the deepest stage)."""

    network_overrides = _rung(SSSTrainer_L1, "global_splits")


class SSSTrainer_L3(SSSTrainer_L2):
    """Ladder rung 3 = L2 + local mix (``mixes="both"``: Bi-WKV inside the finer local windows)."""

    network_overrides = _rung(SSSTrainer_L2, "mixes")


class SSSTrainer_L4(SSSTrainer_L3):
    """Ladder rung 4 = L3 + direction-aware shift (``shift="stage"``: channel shares per axis from the
    weighted scan orders, instead of Q-Shift's equal shares)."""

    network_overrides = _rung(SSSTrainer_L3, "shift")


class SSSTrainer_L5(SSSTrainer_L4):
    """Ladder rung 5 = L4 + dynamic gate (``scan_weights="dynamic"``: per-sample scan weights from
    the input, which the shift shares follow)."""

    network_overrides = _rung(SSSTrainer_L4, "scan_weights")


class SSSTrainer_L6(SSSTrainer_L5):
    """Ladder rung 6 = L5 + pooled WKV (``pooled_wkv=True``: k, v average-pooled at the first RWKV
    stages). The next rung, + DySample (``upsampler="dysample"``), is ``SSSTrainer``."""

    network_overrides = _rung(SSSTrainer_L5, "pooled_wkv")


LADDER = [SSSTrainer_L0, SSSTrainer_L1, SSSTrainer_L2, SSSTrainer_L3, SSSTrainer_L4, SSSTrainer_L5, SSSTrainer_L6,
          SSSTrainer]


class SSSTrainer_VRWKV(SSSTrainer_L0):
    """Legacy name of ``SSSTrainer_L0`` (plain Vision-RWKV in the same U-Net), kept so that its runs
    and checkpoints still load; in 3D its Q-Shift now covers the D axis too."""
