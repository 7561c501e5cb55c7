"""Peak tensor memory of a callable on the CPU, replayed from the PyTorch profiler's allocation events."""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # keep the profiler's start/stop lines out of the output

from torch.profiler import ProfilerActivity, profile  # noqa: E402


def peak_memory_mb(fn: Callable[[], object]) -> float:
    """High-water mark (MB) of live tensor memory allocated while ``fn()`` runs: the profiler
    records every allocation and free with its size; replaying them in time order gives the peak."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    live = peak = 0
    for e in events:
        live += e.nbytes()
        peak = max(peak, live)
    return peak / 2**20
