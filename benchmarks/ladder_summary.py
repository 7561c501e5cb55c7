"""The ablation ladder as a table: each rung against the rung below it (paired, seeds, 95 % interval).

    python benchmarks/ladder_summary.py OUT [--metric dice|hd95] [--plot ladder.png]
    python benchmarks/ladder_summary.py docs/evidence/ladder_c3d/compare.json docs/evidence/ladder_c3d/rungs/*.json
    python benchmarks/ladder_summary.py --rule docs/evidence/ladder_c3d docs/evidence/ladder_c2d

OUT: an ``sss-nnunet compare`` folder of ladder rows (``benchmarks/evidence.sh ladder-c3d``), read
from its run records (``OUT/runs/seedS/ROW/result.json``), so rungs still missing leave gaps; or
compare.json files, whose rows hold the same records (the committed evidence, no run folder needed;
a run found twice counts once); a folder's compare.json and rungs/*.json are read too.
``--rule``: each source one set; per rung its difference to the rung below on every set and issue
23's rule for defaults (a mechanism stays on unless its removal is better on two sets).
Rungs ``sss_nnunet.trainers.LADDER`` (SSSTrainer_L0 ... L6, then
SSSTrainer), each the previous plus one mechanism; per rung: mean over seeds of the class-averaged
metric, and the paired difference to the previous finished rung with its bootstrap interval and
verdict (``sss_nnunet.compare.stats``, the same statistics as compare's verdicts against the
baseline), and to nnUNetTrainer. ``--plot``: per rung the seeds' means and that difference, as a figure.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from sss_nnunet.compare.provenance import finished_runs, network_name  # noqa: E402
from sss_nnunet.compare.stats import (  # noqa: E402
    METRICS,
    interval_text,
    mean_sd_text,
    metric_digits,
    paired_interval,
    seed_means,
)
from sss_nnunet.errors import SSSError  # noqa: E402
from sss_nnunet.trainers import LADDER  # noqa: E402

BASELINE = "nnUNetTrainer"


def load(*sources: Path) -> dict[str, list[dict]]:
    """Row name (trainer, or TRAINER:PLANS for other plans) -> its ok run records (one per seed), from
    compare folders and / or compare.json files of one ladder: ``ValueError`` when they hold runs of
    several datasets, budgets or recipes."""
    runs: dict[str, list[dict]] = {}
    seen, kinds = set(), set()
    for source in sources:
        for key, record in finished_runs(source):
            kinds.add((key[0], key[1], key[4]))
            if key[2:] not in seen:  # the same run in a folder and in its archive
                seen.add(key[2:])
                runs.setdefault(network_name(record["trainer"], record.get("plans")), []).append(record)
    if len(kinds) > 1:
        found = "; ".join(f"{d} {i} it. {r}" for d, i, r in sorted(kinds, key=str))
        raise ValueError(f"{', '.join(map(str, sources))}: runs of several datasets, budgets or recipes ({found}): "
                         f"one ladder per table (--rule: one set per argument)")
    return runs


def _fmt(found: tuple[float, float, float, str], metric: str, mark: str = "**") -> str:
    mean, lo, hi, v = found
    return f"{interval_text(mean, lo, hi, metric_digits(metric))} {mark}{v}{mark}"


def _delta(mine: list[dict], base: list[dict], metric: str) -> str:
    found = paired_interval(mine, base, metric)
    return "–" if found is None else _fmt(found, metric)


def rule(sets: dict[str, dict[str, list[dict]]], metric: str = "dice") -> tuple[str, dict[str, bool]]:
    """Issue 23's rule for defaults over several sets (name -> trainer -> run records): a rung's mechanism
    stays on (the paper's design) unless removing it is better, i.e. the rung is **behind** the rung
    directly below it with an interval that excludes 0, on at least two sets. A rung compared across a
    gap (the rung below not run on that set) spans two mechanisms and counts for neither. Returns the
    markdown table and rung name -> on (True) / off (False)."""
    names = list(sets)
    lines = [f"| rung | adds | {' | '.join(names)} | removal better on | default by the rule |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    decision = {}
    for i, trainer in enumerate(LADDER[1:], start=1):
        name, below = trainer.__name__, LADDER[i - 1].__name__
        cells, better, counted = [], [], 0
        for set_name, runs in sets.items():
            previous = next((t.__name__ for t in reversed(LADDER[:i]) if runs.get(t.__name__)), None)
            found = paired_interval(runs.get(name, []), runs.get(previous, []), metric) if previous else None
            if found is None:
                cells.append("not run")
                continue
            cell = _fmt(found, metric, mark="")
            if previous != below:
                cell += f" (vs {previous}: spans {below}, not counted)"
            else:
                counted += 1
                better += [set_name] if found[3] == "behind" else []
            cells.append(cell)
        decision[name] = len(better) < 2
        default = "**off**" if not decision[name] else "on" if counted >= 2 else f"on (measured on {counted} set(s))"
        lines.append(f"| {name} | {_adds(trainer)} | {' | '.join(cells)} | {', '.join(better) or '–'} | {default} |")
    return "\n".join(lines), decision


def _mean_sd(records: list[dict], metric: str) -> str:
    return mean_sd_text(seed_means(records, metric), metric_digits(metric))


def _adds(trainer: type) -> str:
    """What a rung adds, from its docstring."""
    if trainer.__name__ == "SSSTrainer_L0":
        return "plain Vision-RWKV in the same U-Net"
    if trainer.__name__ == "SSSTrainer":
        return "+ DySample (the paper's network)"
    return (trainer.__doc__ or "").split("=", 1)[-1].split("(")[0].strip(" .\n")


def table(runs: dict[str, list[dict]], metric: str = "dice") -> str:
    lines = [f"| rung | adds | seeds | mean {metric} | Δ vs previous finished rung [95 % CI] | Δ vs {BASELINE} |",
             "|---|---|---|---|---|---|"]
    previous = None
    for trainer in LADDER:
        name = trainer.__name__
        doc = _adds(trainer)
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
        seeds = seed_means(runs[name], metric)
        left.barh(y, np.mean(seeds), color="tab:blue", alpha=0.35)
        left.plot(seeds, [y] * len(seeds), "o", color="tab:blue", ms=4)
        if previous is not None:
            found = paired_interval(runs[name], runs[previous], metric)
            if found is not None:
                mean, lo, hi, v = found
                right.errorbar(mean, y, xerr=[[mean - lo], [hi - mean]], fmt="o", capsize=4,
                               color=colours.get(v, "tab:orange"), label=v)
        previous = name
    if metric == "dice":  # the differences lie near the top: start the axis below the lowest seed
        lowest = min(v for name in names + [BASELINE] if runs.get(name) for v in seed_means(runs[name], metric))
        left.set_xlim(max(0.0, lowest - 0.05), 1.0)
    if runs.get(BASELINE):
        left.axvline(np.mean(seed_means(runs[BASELINE], metric)), color="k", ls="--", lw=1, label=BASELINE)
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
    ap.add_argument("--rule", action="store_true",
                    help="each source is one set (a folder: compare --out and / or an archive with compare.json "
                         "and rungs/); print issue 23's rule for defaults over the sets")
    args = ap.parse_args(argv)
    missing = [str(s) for s in args.sources if not s.exists()]
    if missing:
        print(f"ladder_summary: {missing[0]}: no such folder or file", file=sys.stderr)
        return 2
    try:
        return _summarise(args)
    except (SSSError, ValueError) as e:
        print(f"ladder_summary: {e}", file=sys.stderr)
        return 2


def _summarise(args: argparse.Namespace) -> int:
    if args.rule:
        sets = {(s.name if s.is_dir() else s.stem): load(s) for s in args.sources}
        empty = [name for name, runs in sets.items() if not runs]
        if empty or len(sets) < len(args.sources):
            why = f"{empty[0]}: no finished runs" if empty else "two sources share a name"
            print(f"ladder_summary: {why}", file=sys.stderr)
            return 2
        print(rule(sets, args.metric)[0])
        return 0
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
