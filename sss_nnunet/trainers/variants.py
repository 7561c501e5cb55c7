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
