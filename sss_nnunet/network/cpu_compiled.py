"""The depthwise conv's weight gradient compiled by ``torch.compile`` (inductor's C++ backend) on the CPU.

d loss / d weight[c, tap] = sum over voxels of x[voxel + tap, c] * grad[voxel, c]: one fused loop
over the channels-last maps per tap instead of PyTorch's CPU kernel. Measured at 1 x 32 x 64 x 128 x
128, 3x3x3, 2 threads (idle 2-core CPU, 2026-12-06, a one-off timing of this gradient alone):
0.43 s in PyTorch, 0.08 s compiled; the first call compiles for ~15 s (one compile per number of
spatial axes, kernel and dtype; sizes are dynamic), so only maps of at least ``MIN_ELEMENTS``
take this path (a full-resolution map of a training step), where that cost is paid back within
tens of steps.

Falls back to PyTorch's kernel, with one warning, where inductor cannot compile (no C++ compiler,
a broken toolchain) and always where ``SSS_CPU_COMPILE=0``.
"""

from __future__ import annotations

import itertools
import os
import shutil
import warnings
from collections.abc import Callable

import torch
import torch.nn.functional as F

MIN_ELEMENTS = 1 << 22  # B * C * voxels of the smallest map that takes the compiled path
_STATE: dict[str, object] = {}


def _taps_weight_grad(xt: torch.Tensor, gt: torch.Tensor, kernel: tuple[int, ...],
                      padding: tuple[int, ...]) -> torch.Tensor:
    """(C, prod(kernel)) weight gradient of a stride-1 depthwise conv from token layouts
    xt, gt (B, *S, C); taps in the row-major order of the kernel."""
    spatial = gt.shape[1:-1]
    pads = [0, 0] + [p for n in reversed(padding) for p in (n, n)]
    xp = F.pad(xt, pads)
    sums = []
    for tap in itertools.product(*(range(k) for k in kernel)):
        window = xp[(slice(None), *(slice(o, o + n) for o, n in zip(tap, spatial)), slice(None))]
        sums.append((window * gt).sum(dim=tuple(range(gt.dim() - 1))))
    return torch.stack(sums, -1)


def _compiler_missing() -> str | None:
    if os.environ.get("SSS_CPU_COMPILE", "1") == "0":
        return "SSS_CPU_COMPILE=0"
    compilers = [os.environ["CXX"]] if os.environ.get("CXX") else ["g++", "c++", "clang++"]
    if not any(shutil.which(c) for c in compilers):
        return f"no C++ compiler found ({', '.join(compilers)})"
    return None


def _compiled() -> Callable | None:
    if "fn" not in _STATE:
        reason = _compiler_missing()
        _STATE["fn"] = None if reason else torch.compile(_taps_weight_grad, dynamic=True)
        _STATE["reason"] = reason
    return _STATE["fn"]  # type: ignore[return-value]


def _disable(error: BaseException) -> None:
    _STATE["fn"] = None
    warnings.warn(f"sss_nnunet: the compiled depthwise weight gradient failed ({type(error).__name__}: "
                  f"{str(error).splitlines()[0] if str(error) else ''}); using PyTorch's kernel from now on",
                  RuntimeWarning, stacklevel=3)


def depthwise_weight_grad(x: torch.Tensor, grad: torch.Tensor, kernel: tuple[int, ...],
                          padding: tuple[int, ...]) -> torch.Tensor | None:
    """(C, 1, *kernel) weight gradient of a stride-1 depthwise conv of the channels-last map x
    (B, C, *S) given the channels-last output gradient (B, C, *S); None where the compiled path
    does not apply (small map, half precision, no compiler): the caller takes PyTorch's kernel."""
    if x.numel() < MIN_ELEMENTS or x.dtype not in (torch.float32, torch.float64):
        return None
    fn = _compiled()
    if fn is None:
        return None
    try:
        gw = fn(x.movedim(1, -1), grad.movedim(1, -1), tuple(kernel), tuple(padding))
    except Exception as error:  # inductor could not build or run: fall back for good
        _disable(error)
        return None
    return gw.reshape(x.shape[1], 1, *kernel).to(x.dtype)
