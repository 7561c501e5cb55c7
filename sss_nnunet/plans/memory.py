"""Training memory of RWKV-SSS at a patch size and batch size: the model the SSSPlans planner fits.

Units: bytes for memory, voxels for patch sizes, GiB (2**30 bytes) for the user's target.

Model (one training iteration of ``SSSTrainer``, the steady state from the second step on)::

    training_bytes(B) = STATE_COPIES * parameter_bytes
                      + B * activation_bytes_per_sample * (1 + TRANSIENT_FRACTION)
    fits if training_bytes(B) <= usable_bytes(target) = USABLE_FRACTION * target - CUDA_CONTEXT_BYTES

- ``activation_bytes_per_sample``: every tensor autograd keeps for backward in one forward pass
  of the real network (built from the plans' ``architecture`` entry as nnU-Net builds it, with
  deep supervision) plus nnU-Net's training loss (Dice + CE on every supervised output), for one
  sample of ``patch_size`` voxels. Nothing is computed by hand: the forward pass runs on
  PyTorch's ``meta`` device (shapes only, no data, ~0.2 s) under ``saved_tensors_hooks``, and
  the storages of the saved tensors are summed once each (views share their storage);
  parameters are excluded (counted in the state). This is what is live at the end of the
  forward pass, and it follows the network's code when blocks change. Linear in B (the shared
  scan indices, < 0.1% of the total, are counted once per sample: a slight overestimate).
- ``TRANSIENT_FRACTION``: what backward adds on top (gradients of the largest maps, temporaries
  of the op being differentiated). Measured on the CPU with the PyTorch profiler's allocation
  events replayed into a peak (``measure_peak_bytes``) over two AdamW iterations (forward, loss,
  backward, step) of 2D and 3D networks of 4-6 stages at 16 sizes (16x32x32 .. 128^3, 64^2 ..
  384x256): peak / (activations + 3 x parameters) = 0.86 .. 1.14, highest for the largest maps
  (1.14 at 96^3 and 128^3). With 0.2 the model lies 1.04-1.28x above every measurement;
  tests/plans/test_memory.py checks three sizes (ranking, factor <= 1.35 either way).
- ``STATE_COPIES``: float32 weights, gradients and AdamW's two moments, all resident during the
  forward/backward pass of every iteration but the first.
- Precision: float32 everywhere. On CUDA, nnU-Net trains with autocast (conv/linear outputs in
  float16, norms and the Bi-WKV scan in float32), so the model is an upper bound there.
- ``USABLE_FRACTION`` / ``CUDA_CONTEXT_BYTES``: what a GPU of ``target`` GiB leaves to tensors
  (CUDA context and cuDNN workspaces, caching-allocator fragmentation). Assumed, not measured:
  this machine has no GPU.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

GIB = 2**30
STATE_COPIES = 4
TRANSIENT_FRACTION = 0.2
USABLE_FRACTION = 0.9
CUDA_CONTEXT_BYTES = GIB // 2


def usable_bytes(target_gib: float) -> int:
    """Bytes of tensors a GPU with ``target_gib`` GiB can hold during training (may be <= 0)."""
    return int(USABLE_FRACTION * target_gib * GIB - CUDA_CONTEXT_BYTES)


@dataclass(frozen=True)
class MemoryEstimate:
    """Training memory of one network at one patch size (voxels), in bytes."""

    patch_size: tuple[int, ...]
    parameter_bytes: int
    activation_bytes_per_sample: int

    @property
    def state_bytes(self) -> int:
        """Weights, gradients and optimiser moments (independent of the batch)."""
        return STATE_COPIES * self.parameter_bytes

    @property
    def bytes_per_sample(self) -> int:
        """Saved activations plus the backward transient for one sample."""
        return math.ceil(self.activation_bytes_per_sample * (1 + TRANSIENT_FRACTION))

    def training_bytes(self, batch_size: int) -> int:
        """Peak tensor memory of a training iteration at ``batch_size``."""
        return self.state_bytes + batch_size * self.bytes_per_sample

    def largest_batch(self, budget_bytes: int) -> int:
        """Largest batch size whose ``training_bytes`` stays within ``budget_bytes`` (0 if none)."""
        return max(0, (budget_bytes - self.state_bytes) // self.bytes_per_sample)


def _deep_supervision_loss(n_outputs: int) -> nn.Module:
    """nnU-Net's training loss as ``nnUNetTrainer._build_loss`` makes it (labels, not regions)."""
    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
    from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss

    loss = DC_and_CE_loss({"batch_dice": True, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                          weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
    if n_outputs == 1:
        return loss
    weights = [1 / 2**i for i in range(n_outputs)]
    weights[-1] = 0.0
    return DeepSupervisionWrapper(loss, [w / sum(weights) for w in weights])


def saved_activation_bytes(network: nn.Module, input_shape: Sequence[int], with_loss: bool = True) -> int:
    """Bytes autograd keeps for backward after the forward pass (and the loss) of ``network``.

    ``network`` may live on any device; it is traced on a ``meta`` copy, so nothing is computed
    or allocated. ``input_shape``: (B, C_in, *spatial) in voxels. Parameters are not counted.
    """
    meta = network if next(network.parameters()).is_meta else _meta_copy(network)
    params = {p.untyped_storage()._cdata for p in meta.parameters()}
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        s = t.untyped_storage()
        if s._cdata not in params:
            storages[s._cdata] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = meta(torch.empty(tuple(input_shape), device="meta"))
        if with_loss:
            outs = out if isinstance(out, (list, tuple)) else [out]
            targets = [torch.empty((o.shape[0], 1, *o.shape[2:]), device="meta", dtype=torch.int16) for o in outs]
            loss_fn = _deep_supervision_loss(len(outs))
            loss_fn(outs, targets) if len(outs) > 1 else loss_fn(outs[0], targets[0])
    return sum(storages.values())


def _meta_copy(network: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(network).to("meta")


def parameter_bytes(network: nn.Module) -> int:
    """Bytes of the trainable parameters (float32)."""
    return sum(p.numel() * 4 for p in network.parameters() if p.requires_grad)


def estimate(network: nn.Module, input_channels: int, patch_size: Sequence[int]) -> MemoryEstimate:
    """Memory model of ``network`` (built with deep supervision, as for training) at ``patch_size``."""
    activations = saved_activation_bytes(network, (1, input_channels, *patch_size))
    return MemoryEstimate(tuple(int(s) for s in patch_size), parameter_bytes(network), activations)


def measure_peak_bytes(fn: Callable[[], object]) -> int:
    """High-water mark (bytes) of tensor memory allocated while ``fn()`` runs, on the CPU.

    The PyTorch profiler records every allocation and free ("[memory]" events); replayed in
    time order they give the live bytes at each moment. Tensors alive before ``fn`` (e.g. the
    parameters) are not counted.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak
