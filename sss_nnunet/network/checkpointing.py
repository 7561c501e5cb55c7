"""Activation checkpointing of a network's blocks, without touching their code or their weights' names.

``apply_checkpointing(network, "rwkv")`` makes every Stage-Scan block (``"all"``: also the
residual conv blocks of encoder and decoder; ``"cpu"``: the blocks of ``"all"``, checkpointed only
while their input is on the CPU) recompute its forward pass during backward instead
of keeping its intermediate activations: only each block's input is stored (``torch.utils.checkpoint``,
non-reentrant, RNG state preserved, so stochastic depth draws the same mask when recomputed).
What the network computes, its gradients and its ``state_dict`` keys are unchanged; a training step
costs one more forward pass of the checkpointed blocks. Checkpointing is active only while training
with gradients enabled; inference (``eval`` / ``no_grad``) runs the blocks as they are.

How: each selected block's class is swapped for a subclass whose ``forward`` runs the original one
under ``checkpoint`` (the subclasses are module-level and named, so a pickled network still loads).
Blocks are recognised by class name (``StageScanBlock``, ``ResidualConvBlock``), so this file does
not depend on where the network package defines them.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

MODES = ("none", "rwkv", "all", "cpu")
_BLOCKS = {"rwkv": ("StageScanBlock",), "all": ("StageScanBlock", "ResidualConvBlock")}
_BLOCKS["cpu"] = _BLOCKS["all"]


class Checkpointed:
    """Mixin placed before a block's class: forward through ``torch.utils.checkpoint`` when training
    (only with an input on the CPU if the block's ``checkpoint_cpu_only`` is set: mode ``cpu``)."""

    checkpoint_cpu_only = False

    def forward(self, *args, **kwargs):
        parent = super().forward
        if self.training and torch.is_grad_enabled() and (not self.checkpoint_cpu_only or args[0].device.type == "cpu"):
            return checkpoint(parent, *args, use_reentrant=False, **kwargs)
        return parent(*args, **kwargs)


def _checkpointed_class(cls: type) -> type:
    if issubclass(cls, Checkpointed):
        return cls
    name = f"Checkpointed{cls.__name__}"
    existing = globals().get(name)
    if existing is not None and existing.__mro__[2] is cls:
        return existing
    new = type(name, (Checkpointed, cls), {"__module__": __name__, "__qualname__": name})
    globals()[name] = new  # importable by name: pickle finds it
    return new


def apply_checkpointing(network: nn.Module, mode: str = "rwkv") -> int:
    """Checkpoint the blocks ``mode`` selects (none | rwkv | all | cpu) in place; returns how many."""
    if mode not in MODES:
        raise ValueError(f"checkpoint must be one of {MODES}, got {mode!r}")
    if mode == "none":
        return 0
    count = 0
    for module in network.modules():
        # a block checkpointed before (class CheckpointedX) matches too and takes this mode's flag
        if type(module).__name__.removeprefix("Checkpointed") in _BLOCKS[mode]:
            module.__class__ = _checkpointed_class(type(module))
            module.checkpoint_cpu_only = mode == "cpu"
            count += 1
    return count


def checkpointed_blocks(network: nn.Module) -> int:
    """How many blocks of ``network`` run under activation checkpointing."""
    return sum(isinstance(m, Checkpointed) for m in network.modules())
