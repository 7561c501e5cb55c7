"""Had a budget converged? Each network at a longer budget against itself at the shorter one.

    python benchmarks/budget_check.py SHORT LONG [--metric dice|hd95]
    python benchmarks/budget_check.py docs/evidence/c3d_sss docs/evidence/c3d_sss_2x

SHORT, LONG: ``sss-nnunet compare`` folders and / or archives (compare.json) of the same dataset and
recipe at two budgets, the shorter first, one budget each (``benchmarks/evidence.sh c3d-sss`` and
``c3d-sss-2x``); anything else is a one-line error. Per network found in
both: the mean over seeds of the class-averaged test metric at each budget, and the paired per-case
difference LONG - SHORT (seed s against seed s, averaged over the shared seeds) with its bootstrap
95 % interval (``sss_nnunet.compare.stats``, the statistics of compare's verdicts). Reading:
``gains`` (the interval excludes 0 in the better direction: the short budget had NOT converged for
this network, in what the tables measure), ``no gain`` (a tie), ``loses`` (worse at the longer
budget), ``too few runs`` (fewer than 3 seeds or 5 cases). The per-epoch pseudo Dice of 2
validation batches is too noisy on the context sets to tell convergence (``unclear`` in the
tables); this reads it from the test cases instead.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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

READING = {"ahead": "gains", "behind": "loses", "tie": "no gain", "too few runs": "too few runs"}


def load(source: Path) -> tuple[dict[tuple, list[dict]], tuple, int]:
    """(trainer, plans, recipe) -> ok run records; the one (dataset, batch size, device) and budget
    (iterations) they have. ``ValueError`` when the source holds no finished run, or runs of several
    datasets or budgets."""
    runs: dict[tuple, list[dict]] = {}
    kinds, budgets = set(), set()  # (dataset, batch size, device); iterations
    for (dataset, iterations, trainer, plans, recipe, _), record in finished_runs(source):
        runs.setdefault((trainer, plans, recipe), []).append(record)
        stats = record.get("stats") or {}
        kinds.add((dataset, (stats.get("budget") or {}).get("batch_size"), stats.get("device")))
        budgets.add(iterations)
    if not runs:
        raise ValueError(f"{source}: no finished runs (runs/seed*/ or compare.json rows)")
    if None in {kind[0] for kind in kinds} or None in budgets:
        raise ValueError(f"{source}: runs without a recorded dataset or budget (no compare_settings.json?)")
    if len(kinds) > 1 or len(budgets) > 1:
        raise ValueError(f"{source}: runs of several datasets, batch sizes, devices or budgets ({_names(kinds)}; "
                         f"{_names(budgets)} iterations): give one comparison per argument")
    return runs, kinds.pop(), budgets.pop()


def _names(found: set) -> str:
    return " / ".join(str(b) for b in sorted(found, key=str))


def table(short: Path, long: Path, metric: str = "dice") -> str:
    """The markdown table (see the module docstring). ``ValueError`` when the two sources hold other
    datasets, SHORT a budget not shorter than LONG's, or no network in common."""
    (a, data_a, it_a), (b, data_b, it_b) = load(short), load(long)
    if data_a != data_b:
        what = [f"{name} {x} vs {y}" for name, x, y in zip(("dataset", "batch size", "device"), data_a, data_b)
                if x != y]
        raise ValueError(f"{short} and {long} differ in more than the budget ({', '.join(what)})")
    if it_a == it_b:
        raise ValueError(f"{short} and {long} hold the same budget ({it_a} iterations)")
    if it_a > it_b:
        raise ValueError(f"{short} holds the longer budget ({it_a} against {it_b} iterations): "
                         f"give the shorter one first")
    shared = [key for key in a if key in b]
    if not shared:
        raise ValueError(f"no network with finished runs in both {short} and {long}")
    digits = metric_digits(metric)
    lines = [f"| network | recipe | seeds | {metric} at {it_a} it. | {metric} at {it_b} it. | "
             f"Δ longer - shorter [95 % CI], paired | reading |", "|---|---|---|---|---|---|---|"]
    for key in shared:
        trainer, plans, recipe = key
        name = network_name(trainer, plans)
        means = [f"{mean_sd_text(seed_means(records, metric), digits)} ({len(records)})"
                 for records in (a[key], b[key])]
        found = paired_interval(b[key], a[key], metric)
        if found is None:
            delta, reading, seeds = "–", "no shared seed", 0
        else:
            mean, lo, hi, v = found
            delta, reading = interval_text(mean, lo, hi, digits), READING[v]
            seeds = len({r["seed"] for r in a[key]} & {r["seed"] for r in b[key]})
        lines.append(f"| {name} | {recipe} | {seeds} | {means[0]} | {means[1]} | {delta} | **{reading}** |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("short", type=Path, metavar="SHORT")
    ap.add_argument("long", type=Path, metavar="LONG")
    ap.add_argument("--metric", choices=sorted(METRICS), default="dice")
    args = ap.parse_args(argv)
    for source in (args.short, args.long):
        if not source.exists():
            print(f"budget_check: {source} does not exist", file=sys.stderr)
            return 2
    try:
        print(table(args.short, args.long, args.metric))
    except (SSSError, ValueError) as e:
        print(f"budget_check: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
