"""CPU peak RSS of a training step: RWKV-SSS with and without activation checkpointing vs PlainConvUNet.

    python benchmarks/bench_memory.py [--shape 64 128 128] [--batch 2] [--classes 14] [--threads 2]

Each model runs in its own fresh process (so one model's peak cannot hide another's): build it
(``bench_network.build``, deep supervision on), then two training steps (forward, a loss on every
deep-supervision output, backward). Printed per model: resident memory before the first step
(weights, input, interpreter), peak resident memory (``ru_maxrss``), their difference (what the
steps needed: activations, gradients, workspace), the second step's time, and the ratios to
PlainConvUNet. ``RWKV-SSS+ckpt:MODE`` applies ``network.checkpointing.apply_checkpointing(MODE)``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from benchmarks.bench_network import build  # noqa: E402
from sss_nnunet.network.checkpointing import apply_checkpointing  # noqa: E402

MODELS = ["PlainConvUNet", "RWKV-SSS", "RWKV-SSS+ckpt:rwkv", "RWKV-SSS+ckpt:all"]


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(name: str, shape: list[int], batch: int, classes: int) -> dict:
    base_name, _, mode = name.partition("+ckpt:")
    torch.manual_seed(0)
    net = build(base_name, classes).train()
    if mode:
        apply_checkpointing(net, mode)
    x = torch.randn(batch, 1, *shape)
    before = rss_mb()
    times = []
    for _ in range(2):
        t0 = time.perf_counter()
        net.zero_grad(set_to_none=False)
        outs = net(x)
        sum(o.square().mean() for o in (outs if isinstance(outs, list) else [outs])).backward()
        times.append(time.perf_counter() - t0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"before_mb": before, "peak_mb": peak, "step_s": times[-1]}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=[64, 128, 128])
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--classes", type=int, default=14)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.child:
        print(json.dumps(child(args.child, args.shape, args.batch, args.classes)))
        return 0
    print(f"training step, batch {args.batch} x 1 x {'x'.join(map(str, args.shape))}, {args.classes} classes, "
          f"{args.threads} threads, one process per model")
    rows = {}
    for name in args.models:
        cmd = [sys.executable, __file__, "--child", name, "--shape", *map(str, args.shape), "--batch",
               str(args.batch), "--classes", str(args.classes), "--threads", str(args.threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            raise SystemExit(f"{name} failed:\n{out.stderr[-2000:]}")
        r = rows[name] = json.loads(out.stdout.strip().splitlines()[-1])
        r["step_mb"] = r["peak_mb"] - r["before_mb"]
        ref = rows.get("PlainConvUNet")
        ratio = (f"peak x{r['peak_mb'] / ref['peak_mb']:.2f}, step memory x{r['step_mb'] / ref['step_mb']:.2f}, "
                 f"time x{r['step_s'] / ref['step_s']:.2f}") if ref else ""
        print(f"{name:20s} before {r['before_mb']:8.0f} MB  peak {r['peak_mb']:8.0f} MB  step {r['step_mb']:8.0f} MB  "
              f"{r['step_s']:6.1f} s  {ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
