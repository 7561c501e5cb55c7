"""(c) One training step of the default network: time, peak memory, stream synchronisations and
host-to-device copies per step, share of device time in the WKV kernels, top kernels.

CUDA: fp16 autocast + GradScaler + SGD (nnU-Net's recipe), eager and ``torch.compile``; the
step after warm-up is profiled (``torch.profiler``, CPU + CUDA activities) and run once more
under ``torch.cuda.set_sync_debug_mode("warn")`` to name the Python lines that synchronise.
CPU: the eager float32 step (autocast fp16/GradScaler, memory, syncs and copies need CUDA).
"""

from __future__ import annotations

import time
import warnings
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from sss_nnunet.gpucheck.common import BATCH, CLASSES, PATCH, default_network, skipped, sync
from sss_nnunet.gpucheck.ddp import loss_fn

SYNC_EVENTS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize")
WKV_PREFIXES = ("wkv_", "sss_nnunet::bi_wkv")


def _batch(device: torch.device, patch, batch: int):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 1, *patch, generator=g)
    y = torch.randint(0, CLASSES, (batch, *patch), generator=g)
    return x.to(device), y.to(device)


def _make_step(net, device: torch.device, compiled: bool):
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    cuda = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=cuda)
    model = torch.compile(net) if compiled else net

    def step(x, y):
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cuda", torch.float16, enabled=cuda):
            loss = loss_fn(model(x), y)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
        scaler.step(opt)
        scaler.update()

    return step


def _kernel_table(prof, device: torch.device) -> dict:
    """Device (or, on the CPU, self CPU) time per kernel/op name, syncs and H2D copies."""
    per_name: dict[str, float] = defaultdict(float)
    syncs = h2d = 0
    for e in prof.events():
        name = e.name
        if any(s in name for s in SYNC_EVENTS):
            syncs += 1
        if "HtoD" in name or "Memcpy HtoD" in name:
            h2d += 1
        if device.type == "cuda":
            if e.device_type == torch.autograd.DeviceType.CUDA and "Memcpy" not in name and "Memset" not in name:
                per_name[name] += e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
        elif e.cpu_parent is None:  # top-level CPU ops
            per_name[name] += e.cpu_time_total
    total = sum(per_name.values()) or 1.0
    wkv = sum(t for n, t in per_name.items() if n.startswith(WKV_PREFIXES) or "bi_wkv" in n)
    top = sorted(per_name.items(), key=lambda kv: -kv[1])[:12]
    return {
        "syncs_per_step": syncs if device.type == "cuda" else None,
        "h2d_copies_per_step": h2d if device.type == "cuda" else None,
        "wkv_share": wkv / total,
        "top": [{"name": n[:120], "us": t, "share": t / total} for n, t in top],
    }


def _sync_sites(step, x, y) -> list[str]:
    """Python lines that trigger a synchronising CUDA call during one step."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step(x, y)
            torch.cuda.synchronize()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sorted({f"{w.filename}:{w.lineno}: {str(w.message).splitlines()[0][:80]}" for w in caught
                   if "synchroniz" in str(w.message).lower()})


def measure(device: torch.device, compiled: bool, patch=PATCH, batch: int = BATCH, steps: int = 3,
            warmup: bool = True) -> dict:
    """``warmup=False`` (CPU --quick): only the profiled step runs (it is then also the first)."""
    net = default_network().to(device).train()
    x, y = _batch(device, patch, batch)
    step = _make_step(net, device, compiled)
    first = None
    if warmup:
        t0 = time.perf_counter()
        step(x, y)  # warm-up (and compilation)
        sync(device)
        first = time.perf_counter() - t0
    times = []
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(steps):
        sync(device)
        t0 = time.perf_counter()
        step(x, y)
        sync(device)
        times.append(time.perf_counter() - t0)
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        step(x, y)
        sync(device)
    profiled = time.perf_counter() - t0
    step_s = sorted(times)[len(times) // 2] if times else profiled  # steps=0: the profiled step's time
    out = {"patch": list(patch), "batch": batch, "first_step_s": profiled if first is None else first, "step_s": step_s,
           "step_time_from": "unprofiled steps" if times else "the profiled step", "peak_memory_MB": peak}
    out.update(_kernel_table(prof, device))
    if device.type == "cuda":
        out["sync_sites"] = _sync_sites(step, x, y)
    out["status"] = "ok"
    return out


def run(device: torch.device, quick: bool) -> dict:
    if device.type == "cuda":
        res = {"eager": measure(device, compiled=False, steps=2 if quick else 5)}
        res["compiled"] = measure(device, compiled=True, steps=2 if quick else 5)
        return res
    patch, batch = ((32, 64, 64), 1) if quick else (PATCH, 1)
    res = {"eager_cpu_float32": measure(device, compiled=False, patch=patch, batch=batch, steps=0 if quick else 1,
                                        warmup=not quick)}
    res["eager_cpu_float32"]["note"] = (f"CPU, float32, patch {'x'.join(map(str, patch))}, batch {batch} "
                                        "(not the GPU configuration)")
    res["eager"] = skipped("skipped: no CUDA (fp16 autocast + GradScaler step, peak memory, syncs and H2D "
                           "copies need a GPU)")
    res["compiled"] = skipped("skipped: no CUDA (a compiled CPU step takes minutes on 2 cores; "
                              "tests/gpu/test_compile_network.py covers compile on the CPU)")
    return res
