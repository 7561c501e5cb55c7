"""RWKV-SSS against nnU-Net's PlainConvUNet and ResidualEncoderUNet (ResEnc M) on this CPU.

    python benchmarks/bench_network.py [--shape 64 128 128] [--classes 14] [--repeats 3]

Prints, measured in one run with the same topology (6 stages, strides (1,1,1), (1,2,2), then
(2,2,2) x4, features 32..320, kernel 3, deep supervision): parameters, multiply-accumulates
(``torch.utils.flop_counter.FlopCounterMode``, FLOPs / 2; Bi-WKV reports its own O(T C)),
CPU forward (eval, no grad) and forward+backward (train) time (best of ``--repeats``, models
interleaved so machine noise hits them alike), peak tensor memory of forward+backward
(replayed from the profiler's allocation events), and the ratios RWKV-SSS / PlainConvUNet.
Targets at 1x1x64x128x128, 14 classes: params <= 34.4 M and MACs <= 38 G (80% of UNETR++'s
42.96 M and 47.9 G), forward time <= 0.5x PlainConvUNet.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from benchmarks._memory import peak_memory_mb  # noqa: E402
from sss_nnunet.network import RWKVSSS

STRIDES = [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
FEATURES = [32, 64, 128, 256, 320, 320]
TARGETS = {"params_m": 34.4, "gmac": 38.0, "fwd_ratio": 0.5}
NNUNET_COMMON = dict(
    conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
    nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True,
)


def build(name: str, classes: int) -> nn.Module:
    n = len(FEATURES)
    if name == "RWKV-SSS":
        return RWKVSSS(1, classes, n, FEATURES, nn.Conv3d, [3] * n, STRIDES, deep_supervision=True)
    if name == "PlainConvUNet":
        return PlainConvUNet(1, n, FEATURES, nn.Conv3d, 3, STRIDES, [2] * n, classes, [2] * (n - 1), **NNUNET_COMMON)
    if name == "ResEncUNet-M":  # nnU-Net's ResEnc M preset: (1, 3, 4, 6, 6, 6) blocks, 1 conv per decoder stage
        return ResidualEncoderUNet(1, n, FEATURES, nn.Conv3d, 3, STRIDES, [1, 3, 4, 6, 6, 6], classes, [1] * (n - 1),
                                   **NNUNET_COMMON)
    raise ValueError(name)


def macs(model: nn.Module, x: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return counter.get_total_flops() / 2


def train_step(model: nn.Module, x: torch.Tensor) -> None:
    model.train()
    out = model(x)
    sum(o.float().mean() for o in (out if isinstance(out, (list, tuple)) else [out])).backward()
    model.zero_grad(set_to_none=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", type=int, nargs=3, default=[64, 128, 128], help="D H W in voxels")
    ap.add_argument("--classes", type=int, default=14)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--models", nargs="+", default=["RWKV-SSS", "PlainConvUNet", "ResEncUNet-M"])
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(1, 1, *args.shape)
    models = {name: build(name, args.classes) for name in args.models}
    print(f"input 1x1x{'x'.join(map(str, args.shape))}, {args.classes} classes, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}\n", flush=True)
    rows = {name: {"params_m": sum(p.numel() for p in m.parameters()) / 1e6, "gmac": macs(m, x) / 1e9}
            for name, m in models.items()}
    for r in rows.values():
        r.update(fwd_s=float("inf"), fwd_bwd_s=float("inf"))
    for _ in range(args.repeats):
        for name, m in models.items():
            m.eval()
            with torch.no_grad():
                t0 = time.perf_counter()
                m(x)
                rows[name]["fwd_s"] = min(rows[name]["fwd_s"], time.perf_counter() - t0)
            t0 = time.perf_counter()
            train_step(m, x)
            rows[name]["fwd_bwd_s"] = min(rows[name]["fwd_bwd_s"], time.perf_counter() - t0)
    for name, m in models.items():
        rows[name]["peak_mb"] = peak_memory_mb(lambda: train_step(m, x))  # noqa: B023

    print(f"{'model':<15} {'params (M)':>10} {'MACs (G)':>9} {'fwd (s)':>8} {'fwd+bwd (s)':>11} {'peak mem (MB)':>13}")
    for name, r in rows.items():
        print(f"{name:<15} {r['params_m']:>10.2f} {r['gmac']:>9.2f} {r['fwd_s']:>8.2f} {r['fwd_bwd_s']:>11.2f} "
              f"{r['peak_mb']:>13.0f}")
    ok = True
    if "RWKV-SSS" in rows and "PlainConvUNet" in rows:
        ours, plain = rows["RWKV-SSS"], rows["PlainConvUNet"]
        print("\nRWKV-SSS / PlainConvUNet:  " + "  ".join(
            f"{k} x{ours[k] / plain[k]:.2f}" for k in ("params_m", "gmac", "fwd_s", "fwd_bwd_s", "peak_mb")))
        checks = [("params <= 34.4 M", ours["params_m"] <= TARGETS["params_m"]),
                  ("MACs <= 38 G", ours["gmac"] <= TARGETS["gmac"]),
                  ("forward <= 0.5x PlainConvUNet", ours["fwd_s"] <= TARGETS["fwd_ratio"] * plain["fwd_s"])]
        for label, passed in checks:
            print(f"  {label}: {'ok' if passed else 'NOT MET'}")
            ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
