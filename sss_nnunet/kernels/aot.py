"""Compile the Bi-WKV Triton kernels ahead of time, exactly as Triton's runtime specialises
them, for GPUs that need not be present.

    python -m sss_nnunet.kernels.aot [--arch 80 90] [--dtype fp32 fp16 bf16] [--quick] [--out DIR]

Triton's launcher does not compile one binary per kernel: it derives, from the actual
arguments of every call, a *specialisation*: integer arguments equal to 1 become compile-time
constants, integers and pointers divisible by 16 (bytes, for pointers) get a divisibility
hint, integers >= 2^31 are typed i64, and the launch's constexprs (``BLOCK_C``, ``CARRY`` for
the one-chunk variant, ``NUM_STAGES``) are baked in. This tool runs the real launchers
(``triton_kernels.bi_wkv_forward``/``bi_wkv_backward``) on a set of calls (the special shapes
T=1, C=1, one chunk, many chunks, odd C, strided inputs, and lengths whose strides need i64,
the latter on the ``meta`` device: no memory), records the launches instead of running them,
asks Triton's own ``native_specialize_impl`` for each argument's specialisation, and compiles
every distinct variant for each architecture.

Prints, per variant and architecture: registers, local memory and shared memory of the
cubin (``cuobjdump -res-usage``), spill stores/loads and stack frame (``ptxas -v`` on
Triton's PTX), and whether the token loads were software-pipelined (``cp.async`` in the PTX).
Exits non-zero if any variant fails to compile. No GPU needed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import triton
from triton._C.libtriton import native_specialize_impl
from triton.backends.compiler import BaseBackend, GPUTarget
from triton.compiler import ASTSource

from sss_nnunet.kernels.wkv import triton_kernels
from sss_nnunet.kernels.wkv.triton_kernels import KERNELS

_RES_RE = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")
_SPILL_RE = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_TARGET_RE = re.compile(r"^\.target\s+(sm_\w+)", re.M)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class Call:
    """One Bi-WKV call: (B, T, C), input layout, device (``meta`` for huge sizes)."""

    B: int
    T: int
    C: int
    layout: str = "contiguous"  # contiguous | strided (k batch-inner, v every other element)
    device: str = "cpu"

    def __str__(self) -> str:
        return f"B{self.B}-T{self.T}-C{self.C}-{self.layout}{'-meta' if self.device == 'meta' else ''}"


# The special shapes of the issue and the network's typical ones: one chunk (T <= 64, local
# windows), many chunks (global scans), T = 1, C = 1, odd C, strided inputs, and sizes whose
# element offsets pass 2^31 (i64 strides; meta tensors, nothing allocated).
CALLS = [
    Call(1, 1, 1), Call(2, 17, 1), Call(512, 64, 32), Call(64, 27, 37), Call(2, 2048, 64),
    Call(1, 131072, 32), Call(2, 40, 6, "strided"), Call(1, 2**25, 96, device="meta"),
]
QUICK_CALLS = [Call(1, 1, 1), Call(64, 27, 37), Call(2, 2048, 64)]


@dataclass(frozen=True)
class Variant:
    """What Triton's runtime compiles for one launch: kernel, argument types, constants and
    divisibility hints (indices of the arguments divisible by 16)."""

    kernel: str
    signature: tuple[tuple[str, str], ...]
    constexprs: tuple[tuple[str, object], ...]
    divisible: tuple[int, ...]

    def describe(self) -> str:
        fn = KERNELS[self.kernel]
        sig = dict(self.signature)
        consts = dict(self.constexprs)
        names = [p.name for p in fn.params]
        ptr = sig.get("k_ptr", "*fp32")[1:]
        ints = [f"{n}={consts[n]}" for n in names if n in consts and not n.isupper()]
        wide = [n for n in names if sig.get(n) == "i64"]
        div = [names[i] for i in self.divisible if not names[i].endswith("_ptr")]
        flags = [f"{n}={v}" for n, v in self.constexprs if n.isupper() and n != "NUM_STAGES"]
        parts = [ptr, *flags, *ints]
        if wide:
            parts.append("i64:" + ",".join(wide))
        parts.append("div16:" + (",".join(div) or "-"))
        return " ".join(parts)


def specialise(launch: triton_kernels.Launch) -> Variant:
    """The specialisation Triton's launcher derives from this launch's arguments."""
    fn = KERNELS[launch.kernel]
    sig, consts, div = {}, {}, []
    args = iter(launch.args)
    for i, param in enumerate(fn.params):
        if param.is_constexpr:
            sig[param.name] = "constexpr"
            consts[param.name] = launch.constexprs[param.name]
            continue
        ty, key = native_specialize_impl(BaseBackend, next(args), False, True, True)
        if ty == "constexpr":  # an integer equal to 1
            sig[param.name] = "constexpr"
            consts[param.name] = key
        else:
            sig[param.name] = ty
            if "D" in key:
                div.append(i)
    return Variant(launch.kernel, tuple(sig.items()), tuple(consts.items()), tuple(div))


def _inputs(call: Call, dtype: torch.dtype) -> list[torch.Tensor]:
    dev = torch.device(call.device)
    w, u = torch.randn(call.C, device=dev), torch.randn(call.C, device=dev)
    k, v, g = (torch.randn(call.B, call.T, call.C, device=dev).to(dtype) for _ in range(3))
    if call.layout == "strided":
        k = k.transpose(0, 1).contiguous().transpose(0, 1)
        v = torch.stack([v, v], -1)[..., 0]
    return [w, u, k, v, g]


def runtime_variants(calls: list[Call], dtypes: list[str]) -> dict[Variant, list[str]]:
    """Distinct variants over ``calls`` x ``dtypes`` (forward and backward), each with the
    calls that need it."""
    out: dict[Variant, list[str]] = {}
    for dtype in dtypes:
        for call in calls:
            w, u, k, v, g = _inputs(call, DTYPES[dtype])
            with triton_kernels.record_launches() as launches:
                y, logd, y_hi = triton_kernels.bi_wkv_forward(w, u, k, v)
                triton_kernels.bi_wkv_backward(w, u, k, v, y_hi if y_hi.numel() else y, logd, g)
            for launch in launches:
                out.setdefault(specialise(launch), []).append(f"{call} {dtype}")
    return out


@dataclass
class KernelReport:
    kernel: str
    variant: str
    arch: int
    registers: int
    stack: int
    shared: int
    local: int  # bytes of local memory per thread
    spill_stores: int
    spill_loads: int
    pipelined: bool  # cp.async in the PTX: loads issued ahead by the software pipeliner
    seconds: float
    calls: list[str] = field(default_factory=list)

    @property
    def spilled(self) -> bool:
        return self.spill_stores > 0 or self.spill_loads > 0 or self.local > 0


def _nvidia_tool(name: str) -> str:
    return str(Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / name)


def _run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout}{res.stderr}")
    return res.stdout + res.stderr


def compile_variant(var: Variant, arch: int, out_dir: Path, index: int) -> KernelReport:
    fn = KERNELS[var.kernel]
    t0 = time.perf_counter()
    attrs = {(i,): [["tt.divisibility", 16]] for i in var.divisible}
    src = ASTSource(fn=fn, signature=dict(var.signature), constexprs=dict(var.constexprs), attrs=attrs)
    compiled = triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"num_warps": 1})
    seconds = time.perf_counter() - t0
    stem = out_dir / f"{var.kernel}_v{index}_sm{arch}"
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
    return KernelReport(var.kernel, var.describe(), arch, reg, stack, shared, local, stores, loads,
                        "cp.async" in compiled.asm["ptx"], seconds)


def compile_all(
    archs: list[int], dtypes: list[str], calls: list[Call] | None = None, out_dir: Path | None = None
) -> tuple[list[KernelReport], list[str]]:
    """Compile every runtime variant of ``calls`` (default ``CALLS``) for every arch.
    Returns reports and failure messages."""
    out_dir = Path(out_dir or tempfile.mkdtemp(prefix="sss_aot_"))
    out_dir.mkdir(parents=True, exist_ok=True)
    reports, failures = [], []
    variants = runtime_variants(calls or CALLS, dtypes)
    for index, (var, used_by) in enumerate(sorted(variants.items(), key=lambda kv: kv[0].kernel)):
        for arch in archs:
            try:
                rep = compile_variant(var, arch, out_dir, index)
                rep.calls = used_by
                reports.append(rep)
            except Exception as e:  # report every failure, then exit non-zero
                last = (str(e).strip().splitlines() or [""])[-1]
                failures.append(f"{var.kernel} [{var.describe()}] sm_{arch}: {type(e).__name__}: {last}")
    return reports, failures


def format_table(reports: list[KernelReport]) -> str:
    head = (
        f"{'kernel':<16} {'arch':<6} {'regs':>4} {'spill st/ld(B)':>14} {'local(B)':>8} {'shared(B)':>9} "
        f"{'async':>5} {'sec':>5}  variant (input dtype, flags, constant ints, i64 args, ints divisible by 16)"
    )
    rows = [head, "-" * len(head)]
    for r in reports:
        rows.append(
            f"{r.kernel.removesuffix('_kernel'):<16} sm_{r.arch:<3} {r.registers:>4} "
            f"{f'{r.spill_stores}/{r.spill_loads}':>14} {r.local:>8} {r.shared:>9} {'yes' if r.pipelined else 'no':>5} "
            f"{r.seconds:>5.1f}  {r.variant}"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sss_nnunet.kernels.aot", description=__doc__.splitlines()[0])
    ap.add_argument("--arch", type=int, nargs="+", default=[80, 90], help="compute capabilities")
    ap.add_argument("--dtype", nargs="+", default=list(DTYPES), choices=list(DTYPES))
    ap.add_argument("--quick", action="store_true", help=f"only the calls {', '.join(map(str, QUICK_CALLS))}")
    ap.add_argument("--out", type=Path, default=None, help="keep cubin/ptx files and aot.json here")
    args = ap.parse_args(argv)
    os.environ.pop("TRITON_INTERPRET", None)  # compile for real even if the shell interprets
    calls = QUICK_CALLS if args.quick else CALLS
    reports, failures = compile_all(args.arch, args.dtype, calls, args.out)
    print(format_table(reports))
    spilled = [r for r in reports if r.spilled]
    print(f"\n{len(reports)} compiled, {len(failures)} failed, {len(spilled)} with register spills")
    if args.out is not None:
        (Path(args.out) / "aot.json").write_text(json.dumps([asdict(r) for r in reports], indent=1))
    for f in failures:
        print(f"FAILED {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
