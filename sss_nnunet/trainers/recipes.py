"""Training recipes (optimiser + learning-rate schedule) that any nnU-Net trainer can be run with.

Each recipe takes the network and the number of epochs and returns ``(optimizer, scheduler)``; the
scheduler is stepped once per epoch with ``scheduler.step(epoch)`` like nnU-Net's ``PolyLRScheduler``
(so a trainer's ``configure_optimizers`` can return the pair unchanged). Everything else (loss, deep
supervision, augmentation, nnU-Net's ``train_step`` with gradient-norm clipping at 12) stays the
trainer's. ``sss-nnunet compare --recipe NAME`` uses them so that networks are compared under ONE
recipe (nnU-Net Revisited, Isensee et al. 2024):

- ``nnunet`` (:func:`nnunet_sgd`): nnU-Net v2's stock recipe (``nnUNetTrainer.configure_optimizers``):
  SGD, lr 1e-2, Nesterov momentum 0.99, weight decay 3e-5 on every parameter, poly decay (0.9);
- ``sss`` (:func:`sss_adamw`): SSSTrainer's recipe: AdamW (betas 0.9, 0.999), lr 1e-3, weight decay
  0.01 on matrices and conv kernels only (none on biases, norms, decays, bonuses, token-shift mixes,
  gate biases), linear warm-up over the first 5 % of epochs, then cosine decay to 1e-6;
- ``own`` (compare only): each trainer keeps its own ``configure_optimizers``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from torch import nn

from sss_nnunet.trainers.schedule import WarmupCosineLR

Recipe = Callable[..., tuple[torch.optim.Optimizer, object]]
RECIPE_NAMES = ("own", "sss", "nnunet")  # what `compare --recipe` accepts


def nnunet_sgd(network: nn.Module, num_epochs: int, lr: float = 1e-2,
               weight_decay: float = 3e-5) -> tuple[torch.optim.Optimizer, PolyLRScheduler]:
    """nnU-Net's stock optimiser and schedule: SGD(lr, momentum 0.99, Nesterov, weight_decay) + poly 0.9."""
    optimizer = torch.optim.SGD(network.parameters(), lr, weight_decay=weight_decay, momentum=0.99, nesterov=True)
    return optimizer, PolyLRScheduler(optimizer, lr, num_epochs)


def sss_adamw(network: nn.Module, num_epochs: int, lr: float = 1e-3, weight_decay: float = 1e-2,
              warmup_fraction: float = 0.05) -> tuple[torch.optim.Optimizer, WarmupCosineLR]:
    """AdamW(lr, weight decay on tensors of >= 2 dims only) + linear warm-up over ``warmup_fraction`` of the
    epochs (at least one) + cosine (``WarmupCosineLR``)."""
    decay, no_decay = [], []
    for p in network.parameters():
        if p.requires_grad:
            (decay if p.ndim >= 2 else no_decay).append(p)
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, betas=(0.9, 0.999),
    )
    warmup = max(1, round(warmup_fraction * num_epochs))
    return optimizer, WarmupCosineLR(optimizer, lr, num_epochs, warmup)


RECIPES: dict[str, Recipe] = {"nnunet": nnunet_sgd, "sss": sss_adamw}


def recipe(name: str) -> Recipe:
    """The recipe called ``name`` (``nnunet`` | ``sss``); ValueError naming the known ones otherwise."""
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; expected one of {sorted(RECIPES)}")
    return RECIPES[name]


@dataclass(frozen=True)
class RecipeSpec:
    """A named recipe with the peak learning rate and weight decay a trainer should log."""

    name: str
    lr: float
    weight_decay: float

    def build(self, network: nn.Module, num_epochs: int):
        """(optimizer, lr_scheduler) for ``network`` trained ``num_epochs`` epochs."""
        return recipe(self.name)(network, num_epochs, lr=self.lr, weight_decay=self.weight_decay)

    def as_dict(self) -> dict:
        return asdict(self)


SPECS = {"sss": RecipeSpec("sss", 1e-3, 1e-2), "nnunet": RecipeSpec("nnunet", 1e-2, 3e-5)}


def get_recipe(name: str) -> RecipeSpec | None:
    """The recipe called ``name``; ``None`` for ``own``; ``ValueError`` naming the choices otherwise."""
    if name == "own":
        return None
    if name not in SPECS:
        raise ValueError(f"unknown recipe '{name}' (choose from {', '.join(RECIPE_NAMES)})")
    return SPECS[name]


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
