"""Learning-rate schedule for SSSTrainer: linear warm-up, then cosine decay (per epoch)."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import _LRScheduler


class WarmupCosineLR(_LRScheduler):
    """lr(e) = lr0 (e + 1) / (W + 1) for e < W, then lr_min + (lr0 - lr_min) (1 + cos(pi s)) / 2
    with s = (e - W) / (E - W). Stepped like nnU-Net's PolyLRScheduler: ``step(current_epoch)``."""

    def __init__(self, optimizer: Optimizer, initial_lr: float, max_steps: int, warmup_steps: int,
                 min_lr: float = 1e-6, current_step: int | None = None):
        self.initial_lr, self.max_steps = initial_lr, max(1, max_steps)
        self.warmup_steps, self.min_lr = max(0, min(warmup_steps, self.max_steps - 1)), min_lr
        self.ctr = 0
        super().__init__(optimizer, current_step if current_step is not None else -1)

    def lr_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.initial_lr * (step + 1) / (self.warmup_steps + 1)
        span = max(1, self.max_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return self.min_lr + (self.initial_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))

    def step(self, current_step: int | None = None) -> None:
        if current_step is None or current_step == -1:
            current_step = self.ctr
            self.ctr += 1
        lr = self.lr_at(current_step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        return self._last_lr
