"""The ablation ladder as a table: each rung against the rung below it (paired, seeds, 95 % interval).

    python benchmarks/ladder_summary.py OUT [--metric dice|hd95] [--plot ladder.png]
    python benchmarks/ladder_summary.py docs/evidence/ladder_c3d/compare.json docs/evidence/ladder_c3d/rungs/*.json

OUT: an ``sss-nnunet compare`` folder of ladder rows (``benchmarks/evidence.sh ladder-c3d``), read
from its run records (``OUT/runs/seedS/ROW/result.json``), so rungs still missing leave gaps; or
compare.json files, whose rows hold the same records (the committed evidence, no run folder needed;
a run found twice counts once). Rungs ``sss_nnunet.trainers.LADDER`` (SSSTrainer_L0 ... L6, then
SSSTrainer), each the previous plus one mechanism; per rung: mean over seeds of the class-averaged
metric, and the paired difference to the previous finished rung with its bootstrap interval and
verdict (``sss_nnunet.compare.stats``, the same statistics as compare's verdicts against the
baseline), and to nnUNetTrainer. ``--plot``: per rung the seeds' means and that difference, as a figure.
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


def _records(source: Path) -> list[dict]:
    if source.is_dir():
        return [json.loads(p.read_text()) for p in sorted(source.glob("runs/seed*/*/result.json"))]
    return [run for row in json.loads(source.read_text()).get("rows", []) for run in row.get("runs", [])]


def load(*sources: Path) -> dict[str, list[dict]]:
    """trainer -> its ok run records (one per seed), from compare folders and / or compare.json files."""
    runs: dict[str, list[dict]] = {}
    seen = set()
    for source in sources:
        for record in _records(source):
            key = (record.get("trainer"), record.get("plans"), record.get("recipe"), record.get("seed"))
            if record.get("status") == "ok" and key not in seen:
                seen.add(key)
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


def _per_seed(records: list[dict], metric: str) -> list[float]:
    return [float(np.mean(list(case_means(r, metric).values()))) for r in records]


def _mean_sd(records: list[dict], metric: str) -> str:
    per_seed = _per_seed(records, metric)
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


def plot(runs: dict[str, list[dict]], path: Path, metric: str = "dice") -> None:
    """Left: each finished rung's per-seed means (dots) and their mean (bar), nnUNetTrainer's mean as a
    line; right: the paired difference to the previous finished rung with its 95 % interval, coloured
    by verdict. Written atomically (``sss_nnunet.io.atomic_output``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from sss_nnunet.io import atomic_output

    names = [t.__name__ for t in LADDER if runs.get(t.__name__)]
    fig = Figure(figsize=(11, 0.45 * len(names) + 1.8))
    left, right = fig.subplots(1, 2, sharey=True)
    colours = {"ahead": "tab:green", "behind": "tab:red", "tie": "tab:grey"}
    previous = None
    for y, name in enumerate(names):
        seeds = _per_seed(runs[name], metric)
        left.barh(y, np.mean(seeds), color="tab:blue", alpha=0.35)
        left.plot(seeds, [y] * len(seeds), "o", color="tab:blue", ms=4)
        if previous is not None:
            diffs, used = paired_differences(runs[name], runs[previous], metric)
            if len(diffs):
                mean, lo, hi = bootstrap_ci(diffs)
                v = verdict(lo, hi, METRICS[metric], len(used), len(diffs))
                right.errorbar(mean, y, xerr=[[mean - lo], [hi - mean]], fmt="o", capsize=4,
                               color=colours.get(v, "tab:orange"), label=v)
        previous = name
    if metric == "dice":  # the differences lie near the top: start the axis below the lowest seed
        lowest = min(v for name in names + [BASELINE] if runs.get(name) for v in _per_seed(runs[name], metric))
        left.set_xlim(max(0.0, lowest - 0.05), 1.0)
    if runs.get(BASELINE):
        left.axvline(np.mean(_per_seed(runs[BASELINE], metric)), color="k", ls="--", lw=1, label=BASELINE)
        left.legend(loc="lower left", fontsize=8)
    right.axvline(0, color="k", lw=0.8)
    handles = dict(zip(*reversed(right.get_legend_handles_labels())))
    if handles:
        right.legend(handles.values(), handles.keys(), fontsize=8, loc="best")
    left.set_yticks(range(len(names)), names)
    left.invert_yaxis()
    left.set_xlabel(f"mean {metric} per seed (bar: mean over seeds)")
    right.set_xlabel(f"Δ {metric} vs the rung above [95 % CI]")
    fig.suptitle(f"Ablation ladder: {len(names)} rungs, each the previous plus one mechanism")
    fig.tight_layout()
    with atomic_output(path) as tmp:
        FigureCanvasAgg(fig).print_png(str(tmp))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("sources", type=Path, nargs="+", metavar="OUT_OR_COMPARE_JSON")
    ap.add_argument("--metric", choices=sorted(METRICS), default="dice")
    ap.add_argument("--plot", type=Path, default=None, metavar="PNG")
    args = ap.parse_args(argv)
    missing = [str(s) for s in args.sources if not s.exists()]
    if missing:
        print(f"ladder_summary: {missing[0]}: no such folder or file", file=sys.stderr)
        return 2
    runs = load(*args.sources)
    if not runs:
        where = ", ".join(str(s) for s in args.sources)
        print(f"ladder_summary: no finished runs in {where} (runs/seed*/ or compare.json rows)", file=sys.stderr)
        return 2
    print(table(runs, args.metric))
    if args.plot:
        plot(runs, args.plot, args.metric)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
