"""CPU fast paths: the same function as the reference forms, computed in another order or layout.

Every fast path is checked against its reference form by tests (float64, values and gradients),
network-wide under ``reference_paths()``:

- channels-last maps (``network.ops.channels_last_on_cpu``);
- the token shift on each direction's live channels (``network.shift.live_channels``);
- k/v pooling as a sum of strided sub-grids (``network.mixes``);
- Bi-WKV's ``dense`` backend for short windows (``kernels.dispatch``).

``layout(x)``: the CPU, unless the reference forms are asked for (traceable: torch.compile keeps
it). ``eager(x)``: also not while traced (torch.compile, ONNX / JIT), where a branch on tensor
values would break the graph.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_REFERENCE = False


def layout(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and not _REFERENCE


def eager(x: torch.Tensor) -> bool:
    return layout(x) and not (torch.compiler.is_compiling() or torch.jit.is_tracing())


@contextlib.contextmanager
def reference_paths() -> Iterator[None]:
    """Inside this block every fast path above runs its reference form (tests, benchmarks)."""
    global _REFERENCE
    before, _REFERENCE = _REFERENCE, True
    try:
        yield
    finally:
        _REFERENCE = before
