"""RWKV-SSS against nnU-Net's PlainConvUNet and ResidualEncoderUNet (ResEnc M) on this CPU.

    python benchmarks/bench_network.py [--shape 64 128 128] [--classes 14] [--repeats 3]
    python benchmarks/bench_network.py --models RWKV-SSS RWKV-SSS:globalOnly PlainConvUNet --counts-only

``RWKV-SSS:NAME`` is the network of the ablation trainer ``SSSTrainer_NAME`` (its
``network_overrides`` on the same topology); ``--counts-only`` skips the timings and the CPU peak
(parameters, FLOPs and planner memory do not depend on what else runs on the machine).

Prints, measured in one run with the same topology (6 stages, strides (1,1,1), (1,2,2), then
(2,2,2) x4, features 32..320, kernel 3, deep supervision): parameters, FLOPs (below), CPU
forward (eval, no grad) and forward+backward (train) time (best of ``--repeats``, models
interleaved so machine noise hits them alike), peak tensor memory of forward+backward on the CPU
(replayed from the profiler's allocation events), the training memory the SSSPlans planner's
model predicts (``sss_nnunet.plans.memory.estimate``, batch 2, float32, weights + AdamW state +
saved activations + backward transient), and the ratios RWKV-SSS / PlainConvUNet.

How FLOPs are counted (forward pass, one 1x1xDxHxW sample), every aten op seen by a
TorchDispatchMode:
- convolutions and matmuls (linear layers): multiply-accumulates from PyTorch's FlopCounterMode
  formulas (its FLOPs / 2);
- Bi-WKV: the custom op's own formula (32 operations per batch row, token and channel: two
  directional recurrences with exp/max/mul/add, and the combine);
- every other op, in operations: pointwise ops (add, mul, sigmoid, exp, activations, ...)
  1 per output element (addcmul 2); reductions 1 per input element; softmax 4 per element;
  LayerNorm / InstanceNorm 7 per element (mean, variance, normalise, affine); average pooling
  prod(kernel) + 1 per output element; linear / bi-/trilinear interpolation 2^(dims+1) per output
  element; grid_sample 2^(dims+1) per output element plus 4 * dims per output location;
  gathers (index, index_select, gather, scatter) 1 per output element. Pure data movement
  (views, permutes, cat, pad, copies) and tensor creation count 0.
Two conventions are printed: ``GFLOPs(MAC=1)`` = MACs + other ops (fvcore-style MACs, the
convention of UNETR++'s 47.98 G, which counts only the MACs: our figure is an upper bound in
that convention) and ``GFLOPs(MAC=2)`` = 2 x MACs + other ops.
Targets at 1x1x64x128x128, 14 classes: params <= 34.4 M (80% of UNETR++'s 42.96 M), GFLOPs(MAC=1)
<= 48, forward time <= 1.0x PlainConvUNet's. CPU timings share the machine with other work: ratios
measured in one interleaved run are what counts.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from benchmarks._memory import peak_memory_mb  # noqa: E402
from sss_nnunet.fastpaths import reference_paths
from sss_nnunet.network import RWKVSSS
from sss_nnunet.plans.memory import estimate

STRIDES = [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2), (2, 2, 2)]
FEATURES = [32, 64, 128, 256, 320, 320]
TARGETS = {"params_m": 34.4, "gflops_mac1": 48.0, "fwd_ratio": 1.0}
ZERO_COST = {
    "view", "_unsafe_view", "reshape", "permute", "transpose", "t", "expand", "slice", "select", "unsqueeze",
    "squeeze", "alias", "detach", "as_strided", "split", "split_with_sizes", "unbind", "narrow", "movedim",
    "clone", "copy_", "_to_copy", "contiguous", "cat", "stack", "constant_pad_nd", "empty", "empty_like",
    "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full",
    "full_like", "new_zeros", "new_full", "new_ones", "arange", "fill_", "zero_", "lift_fresh", "_local_scalar_dense",
    "repeat", "flatten", "unflatten", "view_as", "expand_as", "item", "lift_fresh_copy", "meshgrid",
}
GATHER = {"index", "index_select", "gather", "scatter", "scatter_add", "index_put", "index_put_", "_index_put_impl_",
          "index_add"}
NORMS = {"native_layer_norm", "native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
         "native_group_norm", "instance_norm", "layer_norm", "batch_norm"}
REDUCTIONS = {"mean", "sum", "amax", "amin", "max", "min", "var", "std", "var_mean", "cumsum"}
NNUNET_COMMON = dict(
    conv_bias=True, norm_op=nn.InstanceNorm3d, norm_op_kwargs={"eps": 1e-5, "affine": True},
    nonlin=nn.LeakyReLU, nonlin_kwargs={"inplace": True}, deep_supervision=True,
)


def ablation_overrides(name: str) -> dict:
    """``network_overrides`` of ``SSSTrainer_<name>``; ValueError naming the known ones otherwise."""
    from sss_nnunet.trainers import ABLATION_TRAINERS

    known = {t.__name__.removeprefix("SSSTrainer_"): t.network_overrides for t in ABLATION_TRAINERS}
    if name not in known:
        raise ValueError(f"RWKV-SSS:{name}: no ablation trainer SSSTrainer_{name}; known: {', '.join(sorted(known))}")
    return dict(known[name])


def build(name: str, classes: int) -> nn.Module:
    n = len(FEATURES)
    if name == "RWKV-SSS" or name.startswith("RWKV-SSS:"):
        overrides = ablation_overrides(name.split(":", 1)[1]) if ":" in name else {}
        return RWKVSSS(1, classes, n, FEATURES, nn.Conv3d, [3] * n, STRIDES, deep_supervision=True, **overrides)
    if name == "PlainConvUNet":
        return PlainConvUNet(1, n, FEATURES, nn.Conv3d, 3, STRIDES, [2] * n, classes, [2] * (n - 1), **NNUNET_COMMON)
    if name == "ResEncUNet-M":  # nnU-Net's ResEnc M preset: (1, 3, 4, 6, 6, 6) blocks, 1 conv per decoder stage
        return ResidualEncoderUNet(1, n, FEATURES, nn.Conv3d, 3, STRIDES, [1, 3, 4, 6, 6, 6], classes, [1] * (n - 1),
                                   **NNUNET_COMMON)
    raise ValueError(name)


def _numel(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel()
    return sum(_numel(o) for o in x) if isinstance(x, (list, tuple)) else 0


def op_cost(func, args, kwargs, out) -> tuple[float, float, str]:
    """(MACs, other operations, category) of one aten op call (see the module docstring)."""
    packet = func._overloadpacket
    name = packet.__name__
    if "bi_wkv" in name:
        return 0.0, float(flop_registry[packet](*args, **kwargs, out_val=out)), "bi_wkv"
    if packet in flop_registry:
        return flop_registry[packet](*args, **kwargs, out_val=out) / 2, 0.0, "mac"
    if name in ZERO_COST:
        return 0.0, 0.0, "move"
    n_out = _numel(out[0] if name in NORMS and isinstance(out, (list, tuple)) else out)
    if name in GATHER:
        return 0.0, float(n_out), "gather"
    if name in NORMS:
        return 0.0, 7.0 * n_out, "norm"
    if name in REDUCTIONS:
        return 0.0, float(_numel(args[0])), "pointwise"
    if name in ("_softmax", "softmax", "_log_softmax", "log_softmax"):
        return 0.0, 4.0 * n_out, "pointwise"
    if name.startswith("avg_pool") or name.startswith("max_pool") or name.startswith("adaptive_avg_pool"):
        kernel = args[1] if len(args) > 1 and isinstance(args[1], (list, tuple)) else [1]
        return 0.0, float(n_out * (math.prod(kernel) + 1)), "pool/interp"
    if name.startswith("upsample_"):
        dims = out.dim() - 2
        return 0.0, float(n_out * 2 ** (dims + 1)), "pool/interp"
    if name.startswith("grid_sampler"):
        dims = out.dim() - 2
        locations = n_out // out.shape[1]
        return 0.0, float(n_out * 2 ** (dims + 1) + 4 * dims * locations), "pool/interp"
    if name in ("addcmul", "addcdiv", "lerp", "addcmul_", "lerp_"):
        return 0.0, 2.0 * n_out, "pointwise"
    return 0.0, float(n_out), "pointwise"


class CostMode(TorchDispatchMode):
    """Sums ``op_cost`` over every aten op run while active; ``by_category`` in operations."""

    def __init__(self):
        super().__init__()
        self.macs = 0.0
        self.other = 0.0
        self.by_category: dict[str, float] = {}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        macs, other, category = op_cost(func, args, kwargs, out)
        self.macs += macs
        self.other += other
        self.by_category[category] = self.by_category.get(category, 0.0) + macs + other
        return out


def count_flops(model: nn.Module, x: torch.Tensor) -> CostMode:
    """FLOPs of one forward, counted on the reference forms (``sss_nnunet.fastpaths``): Bi-WKV as
    the O(T) scan and norms as norms on every device (the CPU's fast paths do the same function with
    other arithmetic: a time choice, not the network's cost)."""
    model.eval()
    with torch.no_grad(), reference_paths(), CostMode() as counter:
        model(x)
    return counter


def planner_memory_gib(model: nn.Module, shape, batch: int = 2) -> float:
    """Training memory (GiB) of ``model`` at batch ``batch`` from the SSSPlans planner's model."""
    return estimate(model, 1, shape).training_bytes(batch) / 2**30


def _num(value: float, width: int, digits: int) -> str:
    """``value`` right-aligned in ``width`` characters; "-" where it was not measured (inf/nan)."""
    return f"{value:>{width}.{digits}f}" if math.isfinite(value) else f"{'-':>{width}}"


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
    ap.add_argument("--models", nargs="+", default=["RWKV-SSS", "PlainConvUNet", "ResEncUNet-M"],
                    help="RWKV-SSS, RWKV-SSS:<ablation> (e.g. RWKV-SSS:globalOnly), PlainConvUNet, ResEncUNet-M")
    ap.add_argument("--counts-only", action="store_true", help="parameters, FLOPs and planner memory; no timings")
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    x = torch.randn(1, 1, *args.shape)
    models = {name: build(name, args.classes) for name in args.models}
    print(f"input 1x1x{'x'.join(map(str, args.shape))}, {args.classes} classes, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, best of {args.repeats}\n", flush=True)
    rows = {}
    for name, m in models.items():
        cost = count_flops(m, x)
        rows[name] = {"params_m": sum(p.numel() for p in m.parameters()) / 1e6, "gmac": cost.macs / 1e9,
                      "gother": cost.other / 1e9, "gflops_mac1": (cost.macs + cost.other) / 1e9,
                      "gflops_mac2": (2 * cost.macs + cost.other) / 1e9, "mem_gib": planner_memory_gib(m, args.shape),
                      "categories": {k: v / 1e9 for k, v in sorted(cost.by_category.items()) if v}}
    for r in rows.values():
        r.update(fwd_s=float("inf"), fwd_bwd_s=float("inf"))
    for _ in range(0 if args.counts_only else args.repeats):
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
        rows[name]["peak_mb"] = float("nan") if args.counts_only else peak_memory_mb(lambda: train_step(m, x))  # noqa: B023

    width = max(15, *map(len, rows))
    print(f"{'model':<{width}} {'params (M)':>10} {'GMAC':>7} {'Gother':>7} {'GFLOPs(MAC=1)':>13} "
          f"{'GFLOPs(MAC=2)':>13} {'fwd (s)':>8} "
          f"{'fwd+bwd (s)':>11} {'CPU peak (MB)':>13} {'planner mem B=2 (GiB)':>21}")
    for name, r in rows.items():
        print(f"{name:<{width}} {r['params_m']:>10.2f} {r['gmac']:>7.2f} {r['gother']:>7.2f} "
              f"{r['gflops_mac1']:>13.2f} {r['gflops_mac2']:>13.2f} {_num(r['fwd_s'], 8, 2)} "
              f"{_num(r['fwd_bwd_s'], 11, 2)} {_num(r['peak_mb'], 13, 0)} {r['mem_gib']:>21.2f}")
    for name, r in rows.items():
        print(f"  {name} G by category: " + ", ".join(f"{k} {v:.2f}" for k, v in r["categories"].items()))
    ok = True
    keys = ("params_m", "gflops_mac1", "mem_gib") if args.counts_only else (
        "params_m", "gflops_mac1", "fwd_s", "fwd_bwd_s", "peak_mb", "mem_gib")
    ours = rows.get("RWKV-SSS")
    for name, r in rows.items():  # each ablation beside the default network
        if ours is not None and name.startswith("RWKV-SSS:"):
            print(f"{name} / RWKV-SSS:  " + "  ".join(f"{k} x{r[k] / ours[k]:.2f}" for k in keys))
    if ours is not None and "PlainConvUNet" in rows:
        plain = rows["PlainConvUNet"]
        print("\nRWKV-SSS / PlainConvUNet:  " + "  ".join(f"{k} x{ours[k] / plain[k]:.2f}" for k in keys))
        checks = [("params <= 34.4 M", ours["params_m"] <= TARGETS["params_m"]),
                  ("GFLOPs(MAC=1) <= 48", ours["gflops_mac1"] <= TARGETS["gflops_mac1"])]
        if not args.counts_only:
            checks.append(("forward <= 1.0x PlainConvUNet", ours["fwd_s"] <= TARGETS["fwd_ratio"] * plain["fwd_s"]))
        for label, passed in checks:
            print(f"  {label}: {'ok' if passed else 'NOT MET'}")
            ok &= passed
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
