"""Mutation check of the quick tests: plant one small behaviour bug at a time, run the tests that cover it.

Each mutation is a regular-expression edit (or a JSON edit) of one file of a temporary copy of the
repository; the tests named for it run there with ``-m "not slow"`` and must fail ("caught"). A test run
that passes is "MISSED". A pattern that matches nothing is "TARGET NOT FOUND": the code moved or changed,
the mutation must be updated, and the script fails (a mutation that cannot be planted is never a pass).

    python benchmarks/mutation.py                 # all mutations, one after the other
    python benchmarks/mutation.py -k lr -k gate   # those whose name contains "lr" or "gate"
    python benchmarks/mutation.py --list

Exit status: 0 when every mutation was planted and caught, 1 otherwise. Costs one quick run of the
named test files per mutation (a few minutes in all on 2 cores); runs niced with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COPY = ("sss_nnunet", "tests", "benchmarks", "training_scripts", "evaluation_scripts", "pyproject.toml", "setup.py",
        "constraints.txt", "Makefile", "README.md", "docs")


@dataclass
class Mutation:
    """``pattern`` (a regex, searched in every file of ``files``, a glob under the repository root) is
    replaced by ``replacement`` in the first file that matches; or ``edit`` rewrites the file's text."""

    name: str
    what: str
    files: str
    tests: list[str]
    pattern: str = ""
    replacement: str = ""
    edit: Callable[[str], str] | None = None
    k: str = ""  # optional pytest -k expression
    extra_env: dict = field(default_factory=dict)

    def plant(self, root: Path) -> tuple[Path, str]:
        """Apply the mutation under ``root``; returns (edited file, its original text). LookupError if nothing
        matches."""
        for path in sorted(root.glob(self.files)):
            if not path.is_file():
                continue
            text = path.read_text()
            if self.edit is not None:
                new = self.edit(text)
            else:
                new, n = re.subn(self.pattern, self.replacement, text, count=1, flags=re.MULTILINE)
                if n == 0:
                    continue
            if new == text:
                continue
            path.write_text(new)
            return path, text
        raise LookupError(f"target not found: {self.pattern or self.edit} in {self.files}")


def swap_synapse_case(text: str) -> str:
    """One case exchanged between the paper's Synapse train and test lists (counts unchanged)."""
    data = json.loads(text)
    split = data["synapse"]
    train, test = split["train_18"], split["test_12"]
    train[0], test[0] = test[0], train[0]
    return json.dumps(data, indent=1) + "\n"


MUTATIONS = [
    Mutation("bi_wkv_grad_factor", "Bi-WKV autograd glue returns 2 x dw (wrong gradient factor)",
             "sss_nnunet/**/*.py", ["tests/network/test_gradients.py"],
             r"return dw, du, dk, dv, None", "return 2 * dw, du, dk, dv, None"),
    Mutation("bi_wkv_backward_noise", "Bi-WKV backward (torch backend) returns 1.5 x dk",
             "sss_nnunet/kernels/**/*.py", ["tests/network/test_gradients.py", "tests/kernels/test_bi_wkv.py"],
             r"return dw\.to\(w\.dtype\), du\.to\(u\.dtype\), dk\.to\(k\.dtype\)",
             "return dw.to(w.dtype), du.to(u.dtype), (1.5 * dk).to(k.dtype)"),
    Mutation("token_shift_noop", "directional token shift returns its input unshifted",
             "sss_nnunet/network/**/*.py", ["tests/network/test_windows.py", "tests/network/test_network.py"],
             r"(def directional_shift\([\s\S]*?\"\"\"[\s\S]*?\"\"\"\n)(\s+)", r"\1\2return x\n\2"),
    Mutation("gate_ignores_input", "dynamic scan gate ignores its input (pooled features zeroed)",
             "sss_nnunet/network/**/*.py", ["tests/network/test_network.py"],
             r"z = h\.float\(\)\.mean\(1\)", "z = torch.zeros_like(h.float().mean(1))"),
    Mutation("dysample_offsets_dropped", "DySample's learned offsets multiplied by 0 (plain bilinear upsampling)",
             "sss_nnunet/network/**/*.py", ["tests/network/test_dysample.py"],
             r"\bo = self\.offset\(x\)", "o = 0 * self.offset(x)"),
    Mutation("scan_stage_orders_identical", "stage scan: every order the raster order (wrong permutation)",
             "sss_nnunet/network/**/*.py", ["tests/network/test_windows.py", "tests/network/test_network.py"],
             r"forward\[i:\] \+ forward\[:i\]", "forward[:i] + forward[i:]"),
    Mutation("scan_snake_not_reversed", "snake traversal without the reversal on odd steps",
             "sss_nnunet/network/**/*.py", ["tests/network/test_windows.py"],
             r"digit = torch\.where\(flip, n - 1 - digit, digit\)", "digit = digit"),
    Mutation("scan_inverse_wrong", "scanned Bi-WKV output put back with the wrong inverse permutation",
             "sss_nnunet/network/**/*.py", ["tests/network/test_windows.py"],
             r"inv\[flat\.flatten\(\)\] = torch\.arange\(flat\.numel\(\)",
             "inv[flat.flatten().flip(0)] = torch.arange(flat.numel()"),
    Mutation("deep_supervision_order", "deep-supervision outputs lowest resolution first",
             "sss_nnunet/network/**/*.py", ["tests/network/test_network.py"],
             r"outputs = outputs\[::-1\]", "outputs = outputs"),
    Mutation("dice_off_3pct", "Dice 3 % too low",
             "sss_nnunet/evaluation/metrics.py", ["tests/evaluation/test_eval_metrics.py"],
             r"2\.0 \* np\.count_nonzero\(pred & gt\)", "2.0 * 0.97 * np.count_nonzero(pred & gt)"),
    Mutation("hd95_percentile", "HD95 computed at the 90th percentile",
             "sss_nnunet/evaluation/metrics.py", ["tests/evaluation/test_eval_metrics.py"],
             r"np\.percentile\((.*), 95\)", r"np.percentile(\1, 90)"),
    Mutation("synapse_label_flip", "Synapse converter: stomach and aorta labels swapped",
             "sss_nnunet/datasets/*.py", ["tests/datasets/test_convert_synapse.py"],
             r"7: 6, 8: 7", "7: 7, 8: 6"),
    Mutation("acdc_label_flip", "ACDC converter: right ventricle and left ventricle cavity names swapped",
             "sss_nnunet/datasets/*.py", ["tests/datasets/test_convert_acdc.py"],
             r"1: \"RV\", 2: \"MLV\", 3: \"LVC\"", "1: \"LVC\", 2: \"MLV\", 3: \"RV\""),
    Mutation("synapse_case_swap", "one case swapped between the paper's Synapse train_18 and test_12",
             "sss_nnunet/datasets/paper_splits.json", ["tests/datasets/test_paper_splits_public.py",
                                                        "tests/datasets/test_convert_synapse.py"],
             edit=swap_synapse_case),
    Mutation("sss_trainer_lr_x10", "SSSTrainer learning rate x 10",
             "sss_nnunet/trainers/*.py", ["tests/trainers/test_trainer_units.py"],
             r"learning_rate = 1e-3", "learning_rate = 1e-2", k="hyper_parameters or optimizer_groups"),
    Mutation("sss_trainer_weight_decay", "SSSTrainer weight decay on the decays and bonuses too",
             "sss_nnunet/trainers/*.py", ["tests/trainers/test_trainer_units.py"],
             r"\(decay if p\.ndim >= 2 else no_decay\)", "decay", k="hyper_parameters or optimizer_groups"),
]


def copy_repo(dest: Path) -> None:
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        elif src.exists():
            shutil.copy2(src, dest / name)


def run_tests(root: Path, m: Mutation, timeout: float) -> tuple[bool, str, float]:
    """(passed, last lines, seconds) of the quick tests of ``m`` under ``root``."""
    env = dict(os.environ, PYTHONPATH=str(root), OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", **m.extra_env)
    cmd = ["nice", "-n", "10", sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-m", "not slow",
           *m.tests]
    if m.k:
        cmd += ["-k", m.k]
    start = time.time()
    try:
        proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, "timed out (counted as caught: the tests did not pass)", time.time() - start
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    return proc.returncode == 0, lines[-1] if lines else "", time.time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", action="append", default=[], help="run the mutations whose name contains this")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per mutation's test run")
    parser.add_argument("--baseline", action="store_true", help="also run each mutation's tests unmutated first")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.k or any(k in m.name for k in args.k)]
    if args.list:
        for m in chosen:
            print(f"{m.name:30s} {m.what}  [{' '.join(m.tests)}]")
        return 0
    rows = []
    with tempfile.TemporaryDirectory(prefix="sss_mutation_") as tmp:
        root = Path(tmp)
        copy_repo(root)
        for m in chosen:
            if args.baseline:
                passed, last, _ = run_tests(root, m, args.timeout)
                if not passed:
                    rows.append((m.name, "BASELINE FAILS", last, 0.0))
                    print(f"{m.name}: the tests fail without the mutation: {last}", flush=True)
                    continue
            try:
                path, original = m.plant(root)
            except LookupError as e:
                rows.append((m.name, "TARGET NOT FOUND", str(e), 0.0))
                print(f"{m.name}: {e}", flush=True)
                continue
            rel = path.relative_to(root)
            try:
                passed, last, secs = run_tests(root, m, args.timeout)
            finally:
                path.write_text(original)
            status = "MISSED" if passed else "caught"
            rows.append((m.name, status, f"{rel}: {last}", secs))
            print(f"{m.name}: {status} ({secs:.0f} s) {rel}: {last}", flush=True)
    caught = sum(r[1] == "caught" for r in rows)
    print("\n| mutation | result | seconds | detail |\n|---|---|---|---|")
    for name, status, detail, secs in rows:
        print(f"| {name} | {status} | {secs:.0f} | {detail} |")
    print(f"\nscore: {caught}/{len(rows)} caught")
    return 0 if caught == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
