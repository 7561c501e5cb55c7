"""(b) Bi-WKV forward and forward+backward times at the shapes the default network really uses
(recorded from one forward pass, not hard-coded), plus long sequences, against the HBM floor."""

from __future__ import annotations

from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from sss_nnunet.gpucheck.common import BATCH, PATCH, default_network, median_time
from sss_nnunet.kernels import bi_wkv

LONG = [(1, 16384, 64), (1, 131072, 64)]  # (B, T, C) beyond the network's stages
TARGET_RATIO = 5.0  # fwd+bwd within 5x of the HBM floor at T >= 2048 (issue 15)
# Peak HBM bandwidth (bytes/s) of known devices, matched on torch.cuda.get_device_name().
KNOWN_PEAK_BW = {
    "H200": 4.8e12, "H100 NVL": 3.9e12, "H100 PCIe": 2.0e12, "H100": 3.35e12,
    "A100-SXM4-80GB": 2.039e12, "A100 80GB PCIe": 1.935e12, "A100": 1.555e12,
}


class _RecordWKV(TorchDispatchMode):
    """Records (B, T, C, dtype) of every ``sss_nnunet::bi_wkv_fwd`` call, however the network
    reaches the op (works on the meta device too)."""

    def __init__(self):
        super().__init__()
        self.calls: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.sss_nnunet.bi_wkv_fwd.default:
            k = args[2]
            self.calls[(*k.shape, str(k.dtype).removeprefix("torch."))] += 1
        return func(*args, **(kwargs or {}))


def network_shapes(device: torch.device, patch=PATCH, batch: int = BATCH) -> list[dict]:
    """Bi-WKV calls of one forward pass of the default network: [{"B","T","C","dtype","calls"}].
    On CUDA under fp16 autocast (as in training); elsewhere on the meta device (no compute)."""
    dev = device if device.type == "cuda" else torch.device("meta")
    net = default_network().to(dev)
    x = torch.randn(batch, 1, *patch, device=dev)
    rec = _RecordWKV()
    with torch.no_grad(), torch.autocast("cuda", torch.float16, enabled=dev.type == "cuda"), rec:
        net(x)
    return [{"B": B, "T": T, "C": C, "dtype": dt, "calls": n} for (B, T, C, dt), n in sorted(rec.calls.items())]


def floor_bytes(B: int, T: int, C: int, dtype: torch.dtype) -> dict[str, int]:
    """Bytes an ideal kernel must move. Forward: read k, v; write y and logD (float32, kept
    for backward). Backward: read k, v, dy, y (float32 y_hi for half inputs), logD; write dk, dv."""
    n, es = B * T * C, torch.tensor([], dtype=dtype).element_size()
    fwd = n * (3 * es + 4)
    y_saved = 4 if es < 4 else es
    bwd = n * (3 * es + y_saved + 4 + 2 * es)
    return {"fwd": fwd, "fwd_bwd": fwd + bwd}


def peak_bandwidth(device: torch.device) -> dict:
    """Known peak HBM bandwidth of the device (if listed) and a measured device-to-device copy."""
    name = torch.cuda.get_device_name(device)
    known = next((bw for key, bw in KNOWN_PEAK_BW.items() if key in name), None)
    src = torch.empty(2**28, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    t = median_time(lambda: dst.copy_(src), device, reps=10, warmup=2)
    return {"device": name, "known_peak_Bps": known, "measured_copy_Bps": 2 * src.numel() / t,
            "reference_Bps": known or 2 * src.numel() / t, "reference": "known peak" if known else "measured copy"}


def time_shape(B: int, T: int, C: int, dtype: torch.dtype, backend: str, device: torch.device, reps: int) -> dict:
    g = torch.Generator(device="cpu").manual_seed(0)
    w = (torch.rand(C, generator=g) * 8 / T).to(device)
    u = (torch.randn(C, generator=g) / T).to(device)
    k, v, gy = (torch.randn(B, T, C, generator=g).to(device, dtype) for _ in range(3))
    ks, vs = k.clone().requires_grad_(), v.clone().requires_grad_()

    def fwd():
        with torch.no_grad():
            bi_wkv(w, u, k, v, backend=backend)

    def fwd_bwd():
        bi_wkv(w, u, ks, vs, backend=backend).backward(gy)

    return {"fwd_s": median_time(fwd, device, reps), "fwd_bwd_s": median_time(fwd_bwd, device, reps)}


def run(device: torch.device, quick: bool) -> dict:
    shapes = network_shapes(device)
    out = {"patch": list(PATCH), "batch": BATCH, "network_shapes": shapes}
    if device.type != "cuda":
        out.update(status="skipped", reason="skipped: no CUDA (timings need a GPU; the shapes above were "
                   "recorded on the meta device)")
        return out
    bw = peak_bandwidth(device)
    rows = []
    todo = [(s["B"], s["T"], s["C"], s["dtype"], "network") for s in shapes]
    todo += [(B, T, C, dt, "long") for B, T, C in LONG for dt in ("float16", "float32")]
    reps = 3 if quick else 10
    for B, T, C, dt, origin in todo:
        dtype = getattr(torch, dt)
        fb = floor_bytes(B, T, C, dtype)
        for backend in ("triton", "torch"):
            if quick and backend == "torch" and T > 16384:
                continue
            t = time_shape(B, T, C, dtype, backend, device, reps)
            row = {"B": B, "T": T, "C": C, "dtype": dt, "origin": origin, "backend": backend, **t}
            for key in ("fwd", "fwd_bwd"):
                floor_s = fb[key] / bw["reference_Bps"]
                row[f"{key}_GBps"] = fb[key] / t[f"{key}_s"] / 1e9
                row[f"{key}_x_floor"] = t[f"{key}_s"] / floor_s
            if backend == "triton" and T >= 2048:
                row["target_met"] = row["fwd_bwd_x_floor"] <= TARGET_RATIO
            rows.append(row)
    met = [r["target_met"] for r in rows if "target_met" in r]
    out.update(status="ok" if all(met) else "target missed", bandwidth=bw, rows=rows,
               target=f"triton fwd+bwd <= {TARGET_RATIO}x HBM floor at T >= 2048")
    return out
