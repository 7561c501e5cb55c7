"""Training recipes (optimiser + learning-rate schedule) that any nnU-Net trainer can be run with.

A recipe replaces what a trainer's ``configure_optimizers`` returns; everything else (loss, deep
supervision, augmentation, nnU-Net's ``train_step`` with gradient-norm clipping at 12) stays the
trainer's. ``sss-nnunet compare --recipe NAME`` uses them so that networks are compared under ONE
recipe (nnU-Net Revisited, Isensee et al. 2024):

- ``sss``: AdamW, lr 1e-3, betas (0.9, 0.999), weight decay 1e-2 on weights with >= 2 dims (none on
  biases, norms, decays, bonuses, token-shift mixes), linear warm-up over the first 5 % of epochs,
  then cosine decay to 1e-6 (SSSTrainer's own recipe);
- ``nnunet``: SGD, lr 1e-2, Nesterov momentum 0.99, weight decay 3e-5 on every parameter, poly
  decay with exponent 0.9 (nnUNetTrainer's own recipe);
- ``own``: each trainer keeps its own ``configure_optimizers``.

Schedules step once per epoch, as nnU-Net's do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

RECIPES = ("own", "sss", "nnunet")


@dataclass(frozen=True)
class Recipe:
    """A named optimiser + schedule. ``lr`` is the peak learning rate."""

    name: str
    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    warmup_fraction: float = 0.0

    def build(self, network: nn.Module, num_epochs: int):
        """(optimizer, lr_scheduler) for ``network`` trained ``num_epochs`` epochs."""
        if self.name == "sss":
            return adamw_warmup_cosine(network, num_epochs, self.lr, self.weight_decay, self.warmup_fraction)
        if self.name == "nnunet":
            return sgd_poly(network, num_epochs, self.lr, self.weight_decay)
        raise ValueError(f"recipe '{self.name}' has no optimiser of its own (the trainer's is used)")

    def as_dict(self) -> dict:
        return asdict(self)


SSS = Recipe("sss", "AdamW", 1e-3, 1e-2, "warm-up + cosine (per epoch, to 1e-6)", 0.05)
NNUNET = Recipe("nnunet", "SGD", 1e-2, 3e-5, "poly 0.9 (per epoch)")
BY_NAME = {"sss": SSS, "nnunet": NNUNET}


def get_recipe(name: str) -> Recipe | None:
    """The recipe called ``name``; ``None`` for ``own``; ``ValueError`` naming the choices otherwise."""
    if name == "own":
        return None
    if name not in BY_NAME:
        raise ValueError(f"unknown recipe '{name}' (choose from {', '.join(RECIPES)})")
    return BY_NAME[name]


def adamw_warmup_cosine(network: nn.Module, num_epochs: int, lr: float = 1e-3, weight_decay: float = 1e-2,
                        warmup_fraction: float = 0.05):
    """AdamW with decay only on parameters of >= 2 dims, warm-up over ``warmup_fraction`` of the epochs
    (at least one), cosine decay after it."""
    from sss_nnunet.trainers.schedule import WarmupCosineLR

    decay, no_decay = [], []
    for p in network.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=(0.9, 0.999))
    warmup = max(1, round(warmup_fraction * num_epochs))
    return optimizer, WarmupCosineLR(optimizer, lr, num_epochs, warmup)


def sgd_poly(network: nn.Module, num_epochs: int, lr: float = 1e-2, weight_decay: float = 3e-5):
    """nnU-Net's default: SGD with Nesterov momentum 0.99 on every parameter, poly decay (exponent 0.9)."""
    from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler

    optimizer = torch.optim.SGD(network.parameters(), lr, weight_decay=weight_decay, momentum=0.99, nesterov=True)
    return optimizer, PolyLRScheduler(optimizer, lr, num_epochs)


def describe_optimizer(optimizer: torch.optim.Optimizer, lr_scheduler, grad_clip: str) -> dict:
    """What a run actually trained with: optimiser class, its arguments per parameter group (learning
    rates as set at construction), the schedule's class and warm-up, gradient clipping."""
    groups = []
    for g in optimizer.param_groups:
        groups.append({k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items()
                       if k in ("initial_lr", "weight_decay", "momentum", "nesterov", "betas", "eps")}
                      | {"n_params": int(sum(p.numel() for p in g["params"]))})
    return {"optimizer": type(optimizer).__name__,
            "lr": getattr(lr_scheduler, "initial_lr", optimizer.defaults.get("lr")),
            "param_groups": groups,
            "schedule": type(lr_scheduler).__name__ if lr_scheduler is not None else None,
            "warmup_epochs": getattr(lr_scheduler, "warmup_steps", 0),
            "grad_clip": grad_clip}
