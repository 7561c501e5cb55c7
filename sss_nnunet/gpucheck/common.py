"""Shared helpers of the GPU check: the default network, timing, skip entries."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn

from sss_nnunet.network import RWKVSSS

# The topology nnU-Net plans for a 64x128x128 3D patch (6 stages, first stride (1, 1, 1),
# then (1, 2, 2) and (2, 2, 2) x 4, features 32..320), as in benchmarks/bench_network.py.
PATCH = (64, 128, 128)
BATCH = 2
CLASSES = 14
STRIDES = [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
FEATURES = [32, 64, 128, 256, 320, 320]


def default_network(classes: int = CLASSES) -> RWKVSSS:
    """The default 3D RWKVSSS for a 64x128x128 patch, deep supervision on (as SSSTrainer builds it)."""
    torch.manual_seed(0)
    n = len(FEATURES)
    return RWKVSSS(1, classes, n, FEATURES, nn.Conv3d, [3] * n, STRIDES, deep_supervision=True)


def skipped(reason: str) -> dict:
    return {"status": "skipped", "reason": reason}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn: Callable[[], object], device: torch.device, reps: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds (CUDA: synchronised around each call)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)
