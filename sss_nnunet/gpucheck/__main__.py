"""python -m sss_nnunet.gpucheck [--out DIR] [--quick]: check RWKV-SSS on a CUDA machine.

Writes DIR/report.json and DIR/report.md (default DIR: ./gpucheck). Runs, on the first CUDA
device: (a) Bi-WKV numerics, (b) Bi-WKV timings and bandwidth, (c) one training step eager
and compiled, (d) one DDP step when 2 or more GPUs are visible. Without CUDA it runs the parts
that make sense on the CPU and marks the others "skipped: no CUDA". A section that raises is
reported as "error" with its message; the command then exits 1 (0 otherwise, also on a CPU).
Designed to finish in under 8 minutes on an A100/H100 (``--quick``: about a minute).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from pathlib import Path

import torch

from sss_nnunet.errors import SSSError
from sss_nnunet.gpucheck import bench, ddp, numerics, train_step
from sss_nnunet.gpucheck.common import skipped
from sss_nnunet.gpucheck.report import markdown
from sss_nnunet.io import atomic_write_json, atomic_write_text


def _ddp(device: torch.device, quick: bool) -> dict:
    n = torch.cuda.device_count() if device.type == "cuda" else 0
    if n < 2:
        return skipped(f"skipped: {'no CUDA' if device.type != 'cuda' else 'only 1 GPU'} (one DDP step needs "
                       "2 GPUs; tests/gpu/test_ddp.py checks DDP with gloo on the CPU)")
    res = ddp.compare(world=2, per_rank=2, dims=3, backend="nccl")
    res["status"] = "ok" if res["grad_rel_diff"] < 1e-3 and res["rank_state_diff"] == 0 else "FAIL"
    return res


SECTIONS = {
    "a_numerics": numerics.run,
    "b_bi_wkv_bench": bench.run,
    "c_train_step": train_step.run,
    "d_ddp": _ddp,
}


def _skips(obj, path: str = "") -> list[str]:
    """Every "skipped" entry of the report, as "section/part: reason"."""
    out = []
    if isinstance(obj, dict):
        if obj.get("status") == "skipped":
            out.append(f"{path}: {obj.get('reason', '')}")
        for key, val in obj.items():
            out += _skips(val, f"{path}/{key}" if path else key)
    return out


def run(out_dir: Path, quick: bool) -> dict:
    device = torch.device("cuda", 0) if torch.cuda.is_available() else torch.device("cpu")
    import triton

    report = {
        "meta": {
            "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)",
            "cuda": device.type == "cuda", "gpus": torch.cuda.device_count(), "torch": torch.__version__,
            "triton": triton.__version__, "python": platform.python_version(), "quick": quick,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
    }
    t_all = time.perf_counter()
    for name, fn in SECTIONS.items():
        t0 = time.perf_counter()
        print(f"[gpucheck] {name} ...", flush=True)
        try:
            report[name] = fn(device, quick)
        except Exception as e:  # report and go on with the other sections
            report[name] = {"status": "error", "error": f"{type(e).__name__}: {e}",
                            "traceback": traceback.format_exc()[-4000:]}
        report[name + "_seconds"] = time.perf_counter() - t0
        print(f"[gpucheck] {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    report["meta"]["seconds"] = time.perf_counter() - t_all
    report["skipped"] = _skips({k: v for k, v in report.items() if k != "meta"})
    report["errors"] = [k for k, v in report.items() if isinstance(v, dict) and v.get("status") == "error"]
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out_dir / "report.json", json.loads(json.dumps(report, default=str)))
    atomic_write_text(out_dir / "report.md", markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sss_nnunet.gpucheck", description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("gpucheck"), help="output folder (default ./gpucheck)")
    ap.add_argument("--quick", action="store_true", help="fewer cases and repetitions (CI, about a minute)")
    args = ap.parse_args(argv)
    if args.out.exists() and not args.out.is_dir():
        raise SSSError(f"--out {args.out}: exists and is not a folder")
    report = run(args.out, args.quick)
    print(f"[gpucheck] wrote {args.out / 'report.json'} and {args.out / 'report.md'} "
          f"in {report['meta']['seconds']:.0f} s")
    for s in report["skipped"]:
        print(f"[gpucheck] {s}")
    for e in report["errors"]:
        print(f"[gpucheck] ERROR in {e}: {report[e]['error']}", file=sys.stderr)
    return 1 if report["errors"] else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SSSError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
