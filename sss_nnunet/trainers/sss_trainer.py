"""SSSTrainer: RWKV-SSS inside stock nnU-Net v2 (``nnUNetv2_train ID CONFIG FOLD -tr SSSTrainer``).

Everything but the network, the optimiser and a few checks is inherited from
``nnUNetTrainer``: data loading, augmentation, deep-supervision loss, sliding-window
validation, checkpoints (written atomically here), ``--c``, ``-device cpu|cuda``, DDP, regions.
"""

from __future__ import annotations

import contextlib
import os

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from nnunetv2.utilities.plans_handling.plans_handler import ConfigurationManager, PlansManager
from torch import nn

from sss_nnunet.network import RWKVSSS
from sss_nnunet.network.checkpointing import apply_checkpointing
from sss_nnunet.trainers.recipes import sss_adamw

_CUDA = torch.device("cuda")  # nnU-Net's default device


def network_kwargs_from_plans(configuration_manager: ConfigurationManager) -> dict:
    """RWKVSSS keyword arguments from a configuration's ``architecture`` entry.

    Works for nnU-Net's default plans (PlainConvUNet / ResidualEncoderUNet vocabulary) and for
    SSSPlans (network_class_name = sss_nnunet.network.RWKVSSS with RWKV-SSS arguments): the
    topology keys are shared and anything RWKVSSS does not use is ignored.
    """
    import pydoc

    kwargs = dict(configuration_manager.network_arch_init_kwargs)
    for key in configuration_manager.network_arch_init_kwargs_req_import:
        if kwargs.get(key) is not None:
            kwargs[key] = pydoc.locate(kwargs[key])
    kwargs.pop("deep_supervision", None)
    return kwargs


LOW_RES = ("3d_lowres", "3d_cascade_fullres")  # nnU-Net's planner leaves these out when 3d_fullres suffices


def missing_configuration(trainer: str, plans: dict, configuration: str) -> str:
    """One line for ``nnUNetv2_train ... CONFIG`` where the plans have no ``configuration``: the command that
    plans it (the right tool for the plans, the real dataset id), or, for a stage the planner dropped, what to
    train instead."""
    from sss_nnunet._stock_cli_errors import _planning_command

    available = list(plans.get("configurations", {}))
    dataset, plans_name = plans.get("dataset_name", "?"), plans.get("plans_name", "?")
    dataset_id = str(int(dataset[7:10])) if dataset[:7] == "Dataset" and dataset[7:10].isdigit() else dataset
    head = (f"{trainer}: configuration '{configuration}' is not in the plans '{plans_name}' of {dataset}. "
            f"Available: {', '.join(available)}.")
    if configuration in LOW_RES and "3d_fullres" in available:
        return (f"{head} The planner left out the low-resolution stage because 3d_fullres already covers "
                f"the images: train 3d_fullres instead (nnUNetv2_train {dataset_id} 3d_fullres FOLD -tr "
                f"{trainer} -p {plans_name})")
    return f"{head} Plan it with: {_planning_command(plans_name, dataset_id)} -c {configuration}"


class SSSTrainer(nnUNetTrainer):
    """RWKV-SSS with nnU-Net's planning, preprocessing, augmentation and inference.

    Network: ``RWKVSSS`` built from the trained configuration's plans (2d, 3d_fullres,
    3d_lowres, 3d_cascade_fullres): its patch size, n_stages, features_per_stage, kernel_sizes
    and strides, with deep supervision. Variants change RWKV-SSS arguments through
    ``network_overrides``. It is the top of the ablation ladder: ``SSSTrainer_L6`` + DySample
    (``upsampler="dysample"``; ``variants.LADDER``).

    Optimiser: ``recipes.sss_adamw``: AdamW (lr 1e-3, weight decay 0.01, none on biases, norms,
    decays, bonuses and token-shift mixes) with a linear warm-up over the first 5% of epochs and
    cosine decay. nnU-Net's SGD recipe is ``recipes.nnunet_sgd``; the network trains under both
    (tests/network/test_recipes_train.py). Measured (issue 23, in-process harness
    tests/network/training_harness.py, batch 2): under SGD the network predicted only background
    (easy blob set, 90 steps: full-resolution Dice 0.00; PlainConvUNet 0.89) because its separable
    conv factors learned sqrt(C) / sqrt(prod(k)) times slower than dense convs under SGD; with the
    dense conv's fan-in init (``conv.ResidualConvBlock``) it reaches 0.90 after 60 steps (AdamW 0.84).
    Which recipe trains better on real data is for ``sss-nnunet compare --recipe``.
    """

    network_overrides: dict = {}  # RWKVSSS arguments fixed by a variant
    # activation checkpointing (network/checkpointing.py): none | rwkv (Stage-Scan blocks) | all (+ conv blocks)
    # | cpu (the blocks of all, only while training on the CPU). Default cpu, measured (benchmarks/bench_memory.py,
    # batch 2 x 64x128x128, 2 cores, 2026-12-06): peak RSS 8852 -> 5395 MB (x1.36 -> x0.83 of PlainConvUNet) and
    # the step 32.2 -> 27.3 s (fewer fresh allocations outweigh the recompute there); on a GPU recomputing costs
    # time and is not measured yet, so CUDA runs keep every activation (the planner's memory model too).
    checkpoint: str = "cpu"
    epochs: int | None = None  # short-run variants
    epochs_env: str | None = None  # environment variable that overrides ``epochs``
    iterations_per_epoch: int | None = None
    val_iterations_per_epoch: int | None = None
    checkpoint_every: int | None = None  # nnU-Net's save_every (default 50 epochs)
    learning_rate = 1e-3
    warmup_fraction = 0.05

    def __init__(self, plans: dict, configuration: str, fold: int, dataset_json: dict,
                 device: torch.device = _CUDA):
        if configuration not in plans.get("configurations", {}):
            raise SystemExit(missing_configuration(type(self).__name__, plans, configuration))
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.initial_lr = self.learning_rate
        self.weight_decay = 1e-2
        epochs = os.environ.get(self.epochs_env, self.epochs) if self.epochs_env else self.epochs
        if epochs is not None:
            self.num_epochs = int(epochs)
        if self.checkpoint_every is not None:
            self.save_every = self.checkpoint_every
        if self.iterations_per_epoch is not None:
            self.num_iterations_per_epoch = self.iterations_per_epoch
        if self.val_iterations_per_epoch is not None:
            self.num_val_iterations_per_epoch = self.val_iterations_per_epoch

    @classmethod
    def build_network_architecture(cls, plans_manager: PlansManager,
                                   configuration_manager: ConfigurationManager, num_input_channels: int,
                                   num_output_channels: int, enable_deep_supervision: bool = True) -> nn.Module:
        """Also used by ``nnUNetv2_predict`` to rebuild the trained network from the checkpoint."""
        kwargs = network_kwargs_from_plans(configuration_manager)
        kwargs.update(cls.network_overrides)
        network = RWKVSSS(input_channels=num_input_channels, num_classes=num_output_channels,
                          deep_supervision=enable_deep_supervision, **kwargs)
        apply_checkpointing(network, cls.checkpoint)
        return network

    def configure_optimizers(self):
        """AdamW + warm-up + cosine (``recipes.sss_adamw``) with this trainer's lr and weight decay."""
        return sss_adamw(self.network, self.num_epochs, lr=self.initial_lr, weight_decay=self.weight_decay,
                         warmup_fraction=self.warmup_fraction)

    def save_checkpoint(self, filename: str) -> None:
        """nnU-Net's checkpoint, written to a hidden temporary file in the same folder and renamed over
        ``filename`` only when complete: a run killed while saving (nnU-Net's plain ``torch.save``
        leaves a truncated ``checkpoint_latest.pth``) keeps the previous checkpoint loadable for ``--c``."""
        folder, name = os.path.split(os.fspath(filename))
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.partial")
        try:
            super().save_checkpoint(tmp)
            if os.path.isfile(tmp):  # nothing is written on other DDP ranks or with checkpointing disabled
                os.replace(tmp, filename)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def load_checkpoint(self, filename_or_checkpoint: dict | str) -> None:
        """Refuse checkpoints of another trainer with a clear message; accept a loaded dict
        (nnunetv2 2.8.1's own ``load_checkpoint(dict)`` fails)."""
        checkpoint = filename_or_checkpoint
        source = "the checkpoint"
        if isinstance(filename_or_checkpoint, (str, os.PathLike)):
            source = str(filename_or_checkpoint)
            checkpoint = torch.load(filename_or_checkpoint, map_location=self.device, weights_only=False)
        name = checkpoint.get("trainer_name")
        if name != type(self).__name__:
            raise SystemExit(
                f"{source} was written by trainer '{name}', not '{type(self).__name__}': its network "
                f"differs. Use -tr {name}, or start a new training without --c."
            )
        if not self.was_initialized:
            self.initialize()
        net = self._plain_network()
        weights = {k.removeprefix("module."): v for k, v in checkpoint["network_weights"].items()}
        differing = set(net.state_dict()) ^ set(weights)
        if differing:
            raise SystemExit(f"{source} does not match the network of these plans (differing weights: "
                             f"{sorted(differing)[:5]} ...). Was it trained with other plans?")
        net.load_state_dict(weights)
        self.my_init_kwargs = checkpoint["init_args"]
        self.current_epoch = checkpoint["current_epoch"]
        self.logger.load_checkpoint(checkpoint["logging"])
        self._best_ema = checkpoint["_best_ema"]
        self.inference_allowed_mirroring_axes = checkpoint.get(
            "inference_allowed_mirroring_axes", self.inference_allowed_mirroring_axes)
        self.optimizer.load_state_dict(checkpoint["optimizer_state"])
        if self.grad_scaler is not None and checkpoint.get("grad_scaler_state") is not None:
            self.grad_scaler.load_state_dict(checkpoint["grad_scaler_state"])

    def _plain_network(self) -> nn.Module:
        mod = self.network.module if self.is_ddp else self.network
        return getattr(mod, "_orig_mod", mod)
