"""The ablation ladder as a table: each rung against the rung below it (paired, seeds, 95 % interval).

    python benchmarks/ladder_summary.py OUT [--metric dice|hd95]

OUT: an ``sss-nnunet compare`` folder of ladder rows (``benchmarks/evidence.sh ladder-c3d``), read
from its run records (``OUT/runs/seedS/ROW/result.json``), so rungs still missing leave gaps. Rungs
``sss_nnunet.trainers.LADDER`` (SSSTrainer_L0 ... L6, then SSSTrainer), each the previous plus one
mechanism; per rung: mean over seeds of the class-averaged metric, and the paired difference to the
previous finished rung with its bootstrap interval and verdict (``sss_nnunet.compare.stats``, the
same statistics as compare's verdicts against the baseline), and to nnUNetTrainer.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from sss_nnunet.compare.stats import METRICS, bootstrap_ci, case_means, paired_differences, verdict  # noqa: E402
from sss_nnunet.trainers import LADDER  # noqa: E402

BASELINE = "nnUNetTrainer"


def load(out: Path) -> dict[str, list[dict]]:
    """trainer -> its ok run records (one per seed)."""
    runs: dict[str, list[dict]] = {}
    for path in sorted(out.glob("runs/seed*/*/result.json")):
        record = json.loads(path.read_text())
        if record.get("status") == "ok":
            runs.setdefault(record["trainer"], []).append(record)
    return runs


def _delta(mine: list[dict], base: list[dict], metric: str) -> str:
    diffs, seeds = paired_differences(mine, base, metric)
    if len(diffs) == 0:
        return "–"
    mean, lo, hi = bootstrap_ci(diffs)
    digits = 3 if metric == "dice" else 1
    return (f"{mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] "
            f"**{verdict(lo, hi, METRICS[metric], len(seeds), len(diffs))}**")


def _mean_sd(records: list[dict], metric: str) -> str:
    per_seed = [np.mean(list(case_means(r, metric).values())) for r in records]
    digits = 3 if metric == "dice" else 1
    return f"{np.mean(per_seed):.{digits}f} ± {np.std(per_seed, ddof=1) if len(per_seed) > 1 else 0:.{digits}f}"


def table(runs: dict[str, list[dict]], metric: str = "dice") -> str:
    lines = [f"| rung | adds | seeds | mean {metric} | Δ vs previous finished rung [95 % CI] | Δ vs {BASELINE} |",
             "|---|---|---|---|---|---|"]
    previous = None
    for trainer in LADDER:
        name = trainer.__name__
        doc = (trainer.__doc__ or "").split("=", 1)[-1].split("(")[0].strip(" .\n") if name != "SSSTrainer_L0" \
            else "plain Vision-RWKV in the same U-Net"
        if name == "SSSTrainer":
            doc = "+ DySample (the paper's network)"
        mine = runs.get(name, [])
        if not mine:
            lines.append(f"| {name} | {doc} | 0 | not run | – | – |")
            continue
        vs_prev = _delta(mine, runs[previous], metric) if previous else "–"
        vs_base = _delta(mine, runs.get(BASELINE, []), metric)
        lines.append(f"| {name} | {doc} | {len(mine)} | {_mean_sd(mine, metric)} | {vs_prev} | {vs_base} |")
        previous = name
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--metric", choices=sorted(METRICS), default="dice")
    args = ap.parse_args(argv)
    runs = load(args.out)
    if not runs:
        print(f"ladder_summary: no finished runs under {args.out}/runs/seed*/", file=sys.stderr)
        return 2
    print(table(runs, args.metric))
    return 0


if __name__ == "__main__":
    sys.exit(main())
