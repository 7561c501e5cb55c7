"""Summarise the pieces of ``benchmarks/evidence.sh`` as markdown for docs/results.md and the README.

    python benchmarks/evidence_summary.py WORK            # WORK: evidence.sh's folder (default ./sss_evidence)
    python benchmarks/evidence_summary.py WORK --plain    # one plain sentence per verdict (README)

Reads every ``WORK/*/compare.json`` (one ``sss-nnunet compare`` run each) and prints, per piece, the
dataset, configuration, budget, recipe(s), seeds, and a table: mean Dice ± sd over seeds, whether
training had converged, and each row's paired difference to the baseline with its bootstrap 95 %
interval and verdict (see ``sss_nnunet/compare/stats.py``). Numbers are copied, not recomputed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


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
    lo, hi = v["ci95"]
    return f"{v['mean_diff']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] **{v['verdict']}**"


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("work", type=Path, nargs="?", default=Path("sss_evidence"))
    parser.add_argument("--plain", action="store_true", help="plain sentences, one per verdict")
    args = parser.parse_args(argv)
    pieces = sorted(p for p in args.work.glob("*/compare.json"))
    if not pieces:
        parser.error(f"no */compare.json under {args.work}")
    for path in pieces:
        data = json.loads(path.read_text())
        if args.plain:
            print("\n".join(plain_sentences(path.parent.name, data)))
        else:
            print(piece_markdown(path.parent.name, data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
