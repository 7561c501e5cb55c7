"""Top operators of one RWKV-SSS forward pass on this CPU (torch.profiler), the paper's topology.

    python benchmarks/profile_network.py [--shape 64 128 128] [--threads 2] [--classes 14] [--rows 15]

Eval mode, no grad, one warm-up pass, then one profiled pass; prints the operators by self CPU
time (share of the total). Same topology as ``bench_network.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from benchmarks.bench_network import build  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=int, nargs=3, default=[64, 128, 128])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--classes", type=int, default=14)
    p.add_argument("--rows", type=int, default=15)
    p.add_argument("--model", default="RWKV-SSS", help="a bench_network.py model name")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    net = build(args.model, args.classes).eval()
    x = torch.randn(1, 1, *args.shape)
    with torch.no_grad():
        net(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            net(x)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    print(f"{args.model}, 1x1x{'x'.join(map(str, args.shape))}, {args.threads} threads: "
          f"{total / 1e6:.2f} s self CPU time in all")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.rows]:
        print(f"{e.key:40s} {e.self_cpu_time_total / 1e6:7.3f} s {100 * e.self_cpu_time_total / total:5.1f} %"
              f"  calls {e.count}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
