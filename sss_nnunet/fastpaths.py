"""CPU fast paths: the same function as the reference forms, computed in another order or layout.

Every fast path is checked against its reference form by tests (float64, values and gradients),
network-wide under ``reference_paths()``:

- channels-last maps (``network.ops.channels_last_on_cpu``) and their instance norm with accurate
  float32 statistics (``network.norm``);
- the token shift on each direction's live channels (``network.shift.live_channels``);
- k/v pooling as a sum of strided sub-grids (``network.mixes``);
- Bi-WKV's ``dense`` backend for short windows (``kernels.dispatch``).
- 1x1 convs as matmuls, the depthwise and stem convs' gradients (``network.fastconv``; the depthwise
  weight gradient compiled on large maps, ``network.cpu_compiled``), the norm's two-pass backward and
  DySample's static grid (``network.dysample``).

``enabled(x)``: on the CPU, in eager mode (not while traced by torch.compile, ONNX or JIT, where a
branch on tensor values would break the graph and the reference forms run), unless
``reference_paths()`` asks for the reference forms.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_REFERENCE = False


def enabled(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and not _REFERENCE and not (torch.compiler.is_compiling() or torch.jit.is_tracing())


def enabled_outside_autocast(x: torch.Tensor) -> bool:
    """``enabled(x)`` and CPU autocast off: for fast paths whose own autograd Functions or folded
    weights would not see autocast's casts (under autocast the stock op runs)."""
    return enabled(x) and not torch.is_autocast_enabled("cpu")


@contextlib.contextmanager
def reference_paths() -> Iterator[None]:
    """Inside this block every fast path above runs its reference form (tests, benchmarks)."""
    global _REFERENCE
    before, _REFERENCE = _REFERENCE, True
    try:
        yield
    finally:
        _REFERENCE = before
