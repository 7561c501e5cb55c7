"""Summarise the pieces of ``benchmarks/evidence.sh`` as markdown for docs/results.md and the README.

    python benchmarks/evidence_summary.py WORK            # WORK: evidence.sh's folder (default ./sss_evidence)
    python benchmarks/evidence_summary.py WORK --plain    # one plain sentence per verdict (README)
    python benchmarks/evidence_summary.py docs/evidence --time   # measured hours per piece, and in all

Reads every ``WORK/*/compare.json`` (one ``sss-nnunet compare`` run each) and prints, per piece, the
dataset, configuration, budget, recipe(s), seeds, and a table: mean Dice ± sd over seeds, whether
training had converged, and each row's paired difference to the baseline with its bootstrap 95 %
interval and verdict (see ``sss_nnunet/compare/stats.py``). Numbers are copied, not recomputed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere
from sss_nnunet.compare.provenance import finished_runs, read_json_object  # noqa: E402
from sss_nnunet.compare.stats import interval_text  # noqa: E402
from sss_nnunet.errors import SSSError  # noqa: E402


def _fmt_stat(stat: dict | None, digits: int = 3) -> str:
    if not stat:
        return "–"
    text = f"{stat['mean']:.{digits}f}"
    return text if stat.get("sd") is None else f"{text} ± {stat['sd']:.{digits}f}"


def _fmt_verdict(v: dict | None, digits: int) -> str:
    if not v:
        return "–"
    if v.get("mean_diff") is None:
        return v["verdict"]
    return f"{interval_text(v['mean_diff'], *v['ci95'], digits)} **{v['verdict']}**"


def piece_markdown(name: str, data: dict) -> str:
    s, meta = data["settings"], data["meta"]
    b = s["budget"]
    verdicts = {(v["row"], v["metric"]): v for v in data.get("verdicts", [])}
    lines = [f"### {name}: {s['dataset']} {s['configuration']}, {b['iterations']} iterations",
             "",
             f"- command: `{meta['command']}`",
             f"- date {meta['date']}, device {s['device']}, {meta['machine']['cpu_count']} CPU cores; seeds "
             f"{meta['seeds']}; batch {b.get('batch_size') or meta.get('batch_size')} for every network; "
             f"{meta.get('n_test_cases')} test cases; baseline {meta.get('baseline_label')}",
             "",
             "| row | runs ok | mean Dice | converged | Δ Dice [95 % CI] vs baseline | Δ HD95 mm [95 % CI] | "
             "train s/it |",
             "|---|---|---|---|---|---|---|"]
    for row in data["rows"]:
        a = row.get("aggregate") or {}
        lines.append(f"| {row['trainer']} | {row['n_ok']}/{row['n_runs']} | {_fmt_stat(a.get('mean_dice'))} | "
                     f"{a.get('convergence', '–')} | {_fmt_verdict(verdicts.get((row['trainer'], 'dice')), 3)} | "
                     f"{_fmt_verdict(verdicts.get((row['trainer'], 'hd95')), 1)} | "
                     f"{_fmt_stat(a.get('seconds_per_iteration'), 2)} |")
    return "\n".join(lines) + "\n"


def plain_sentences(name: str, data: dict) -> list[str]:
    s = data["settings"]
    out = []
    for v in data.get("verdicts", []):
        if v["metric"] != "dice":
            continue
        if v.get("mean_diff") is None:
            out.append(f"- {s['dataset']} ({name}): {v['row']} against {v['baseline']}: no finished pair of runs yet.")
            continue
        lo, hi = v["ci95"]
        words = {"ahead": "ahead of", "behind": "behind", "tie": "tied with",
                 "too few runs": "not yet decided against"}[v["verdict"]]
        out.append(f"- {s['dataset']} ({name}, {s['budget']['iterations']} iterations, {v['n_seeds']} seed(s)): "
                   f"{v['row']} is {words} {v['baseline']}: mean Dice difference {v['mean_diff']:+.3f}, "
                   f"95 % interval [{lo:+.3f}, {hi:+.3f}] over {v['n_cases']} test cases.")
    return out


def time_table(folders: list[Path]) -> str:
    """Per piece: finished runs and their measured wall time (training + prediction of the test
    cases, as recorded by compare), in hours. A run that a ladder reuses from its set's piece (same
    data, budget and recipe) counts for the piece listed first only; the last line sums the pieces."""
    lines = ["| piece | finished runs | of them reused | training h | prediction h | total h |",
             "|---|---|---|---|---|---|"]
    seen: set[tuple] = set()
    totals = [0, 0.0, 0.0]
    for folder in folders:
        runs = finished_runs(folder)
        own = [r for key, r in runs if key not in seen]
        seen.update(key for key, _ in runs)
        train = sum(r.get("train_wall_seconds") or 0.0 for r in own) / 3600
        predict = sum((r.get("predict") or {}).get("wall_seconds") or 0.0 for r in own) / 3600
        totals = [totals[0] + len(own), totals[1] + train, totals[2] + predict]
        lines.append(f"| {folder.name} | {len(runs)} | {len(runs) - len(own)} | {train:.2f} | {predict:.2f} | "
                     f"{train + predict:.2f} |")
    lines.append(f"| all | {totals[0]} | – | {totals[1]:.2f} | {totals[2]:.2f} | {totals[1] + totals[2]:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, nargs="?", default=Path("sss_evidence"))
    parser.add_argument("--plain", action="store_true", help="plain sentences, one per verdict")
    parser.add_argument("--time", action="store_true",
                        help="measured hours per piece (training + prediction of every finished run) and in all")
    args = parser.parse_args(argv)
    pieces = sorted(p for p in args.work.glob("*/compare.json"))
    if not pieces:
        parser.error(f"no */compare.json under {args.work}")
    try:
        if args.time:
            print(time_table([p.parent for p in pieces]))
            return 0
        for path in pieces:
            data = read_json_object(path)
            if args.plain:
                print("\n".join(plain_sentences(path.parent.name, data)))
            else:
                print(piece_markdown(path.parent.name, data))
    except SSSError as e:
        print(f"evidence_summary: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
