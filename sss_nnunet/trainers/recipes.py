"""Training recipes as (optimizer, scheduler) factories, shared by the trainers and ``sss-nnunet compare``.

Each recipe takes the network and the number of epochs and returns ``(optimizer, scheduler)``;
the scheduler is stepped once per epoch with ``scheduler.step(epoch)`` like nnU-Net's
``PolyLRScheduler`` (so a trainer's ``configure_optimizers`` can return the pair unchanged).

- ``nnunet_sgd``: nnU-Net v2's stock recipe (``nnUNetTrainer.configure_optimizers``): SGD, lr 1e-2,
  Nesterov momentum 0.99, weight decay 3e-5 on every parameter, poly decay (exponent 0.9).
- ``sss_adamw``: SSSTrainer's recipe: AdamW (betas 0.9, 0.999), lr 1e-3, weight decay 0.01 on
  matrices and conv kernels only (none on biases, norms, decays, bonuses, token-shift mixes, gate
  biases), linear warm-up over the first 5 % of epochs, then cosine decay to 1e-6.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from nnunetv2.training.lr_scheduler.polylr import PolyLRScheduler
from torch import nn

from sss_nnunet.trainers.schedule import WarmupCosineLR

Recipe = Callable[..., tuple[torch.optim.Optimizer, object]]


def nnunet_sgd(network: nn.Module, num_epochs: int, lr: float = 1e-2,
               weight_decay: float = 3e-5) -> tuple[torch.optim.Optimizer, PolyLRScheduler]:
    """nnU-Net's stock optimiser and schedule: SGD(lr, momentum 0.99, Nesterov, weight_decay) + poly 0.9."""
    optimizer = torch.optim.SGD(network.parameters(), lr, weight_decay=weight_decay, momentum=0.99, nesterov=True)
    return optimizer, PolyLRScheduler(optimizer, lr, num_epochs)


def sss_adamw(network: nn.Module, num_epochs: int, lr: float = 1e-3, weight_decay: float = 1e-2,
              warmup_fraction: float = 0.05) -> tuple[torch.optim.Optimizer, WarmupCosineLR]:
    """AdamW(lr, weight decay on tensors of >= 2 dims only) + linear warm-up + cosine (``WarmupCosineLR``)."""
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
