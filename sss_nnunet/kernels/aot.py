"""Compile every Bi-WKV Triton kernel ahead of time for GPUs that need not be present.

    python -m sss_nnunet.kernels.aot [--arch 80 90] [--dtype fp32 fp16 bf16] [--out DIR]

Prints, per kernel, input dtype and architecture: registers, local memory and shared memory
of Triton's cubin (``cuobjdump -res-usage``), and spill stores/loads and stack frame
(``ptxas -v`` on Triton's PTX). Exits non-zero if any kernel fails to compile. No GPU needed.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from sss_nnunet.kernels.wkv.triton_kernels import DEFAULT_BLOCK_C, KERNELS

# pointers that carry the input dtype; every other pointer is float32 (the backward pass
# reads the float32 y, so y_ptr has the input dtype only in the forward output kernel)
_INPUT_POINTERS = {"k_ptr", "v_ptr", "g_ptr"}
_RES_RE = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")
_SPILL_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_TARGET_RE = re.compile(r"^\.target\s+(sm_\w+)", re.M)


@dataclass
class KernelReport:
    kernel: str
    dtype: str
    arch: int
    registers: int
    stack: int
    shared: int
    local: int  # bytes of local memory per thread
    spill_stores: int
    spill_loads: int
    seconds: float

    @property
    def spilled(self) -> bool:
        return self.spill_stores > 0 or self.spill_loads > 0 or self.local > 0


def signature(fn, dtype: str) -> dict[str, str]:
    sig = {}
    for param in fn.params:
        name = param.name
        if param.is_constexpr:
            sig[name] = "constexpr"
        elif name.endswith("_ptr"):
            typed = name in _INPUT_POINTERS or (name == "y_ptr" and fn is KERNELS["wkv_fwd_output"])
            sig[name] = f"*{dtype}" if typed else "*fp32"
        else:
            sig[name] = "i32"
    return sig


def _nvidia_tool(name: str) -> str:
    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name)


def _run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}{res.stderr}")
    return res.stdout + res.stderr


def compile_kernel(name: str, dtype: str, arch: int, block_c: int, out_dir: Path) -> KernelReport:
    fn = KERNELS[name]
    t0 = time.perf_counter()
    src = ASTSource(fn=fn, signature=signature(fn, dtype), constexprs={"BLOCK_C": block_c})
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": 1})
    seconds = time.perf_counter() - t0
    stem = out_dir / f"{name}_{dtype}_sm{arch}"
    cubin, ptx = stem.with_suffix(".cubin"), stem.with_suffix(".ptx")
    cubin.write_bytes(compiled.asm["cubin"])
    ptx.write_text(compiled.asm["ptx"])
    usage = _RES_RE.search(_run([_nvidia_tool("cuobjdump"), "-res-usage", str(cubin)]))
    target = _TARGET_RE.search(compiled.asm["ptx"])
    spills = _SPILL_RE.search(
        _run([_nvidia_tool("ptxas"), f"-arch={target.group(1)}", "-v", str(ptx), "-o", os.devnull])
    )
    if usage is None or spills is None:
        raise RuntimeError(f"cannot read the resource usage of {cubin}")
    reg, _stack, shared, local = map(int, usage.groups())
    stack, stores, loads = map(int, spills.groups())
    shared = max(shared, compiled.metadata.shared)
    return KernelReport(name, dtype, arch, reg, stack, shared, local, stores, loads, seconds)


def compile_all(
    archs: list[int], dtypes: list[str], block_c: int = DEFAULT_BLOCK_C, out_dir: Path | None = None
) -> tuple[list[KernelReport], list[str]]:
    """Compile every kernel for every (dtype, arch). Returns reports and failure messages."""
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="sss_aot_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    reports, failures = [], []
    for name in KERNELS:
        for dtype in dtypes:
            for arch in archs:
                try:
                    reports.append(compile_kernel(name, dtype, arch, block_c, out_dir))
                except Exception as e:  # report every failure, then exit non-zero
                    last = (str(e).strip().splitlines() or [""])[-1]
                    failures.append(f"{name} {dtype} sm_{arch}: {type(e).__name__}: {last}")
    return reports, failures


def format_table(reports: list[KernelReport]) -> str:
    head = (
        f"{'kernel':<18} {'dtype':<5} {'arch':<6} {'regs':>4} {'spill st(B)':>11} {'spill ld(B)':>11} "
        f"{'local(B)':>8} {'stack(B)':>8} {'shared(B)':>9} {'sec':>5}"
    )
    rows = [head, "-" * len(head)]
    for r in reports:
        rows.append(
            f"{r.kernel:<18} {r.dtype:<5} sm_{r.arch:<3} {r.registers:>4} {r.spill_stores:>11} "
            f"{r.spill_loads:>11} {r.local:>8} {r.stack:>8} {r.shared:>9} {r.seconds:>5.1f}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sss_nnunet.kernels.aot", description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90], help="compute capabilities")
    ap.add_argument("--dtype", nargs="+", default=["fp32", "fp16", "bf16"], choices=["fp32", "fp16", "bf16"])
    ap.add_argument("--block-c", type=int, default=DEFAULT_BLOCK_C, help="channels per program")
    ap.add_argument("--out", type=Path, default=None, help="keep cubin/ptx files here (default: a temp dir)")
    args = ap.parse_args(argv)
    os.environ.pop("TRITON_INTERPRET", None)  # compile for real even if the shell interprets
    reports, failures = compile_all(args.arch, args.dtype, args.block_c, args.out)
    print(format_table(reports))
    spilled = [r for r in reports if r.spilled]
    print(f"\n{len(reports)} compiled, {len(failures)} failed, {len(spilled)} with register spills")
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
