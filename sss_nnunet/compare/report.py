"""compare.md, compare.json, compare.png (per-class Dice per trainer) and curves.png from run records.

A run record is the ``result.json`` of one row (trainer, plans, recipe) and seed
(:mod:`sss_nnunet.compare.runner`). Numbers over seeds are shown as mean ± sample standard deviation
(± omitted for one seed); verdicts against the baseline come from :mod:`sss_nnunet.compare.stats`.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
from datetime import datetime, timezone
from pathlib import Path

from sss_nnunet.compare.plots import bar_plot, curves_plot
from sss_nnunet.io import atomic_write_json, atomic_write_text

OUTPUTS = ("compare.md", "compare.json", "compare.png", "curves.png")


def _stats(values: list[float | None]) -> dict | None:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not vals:
        return None
    return {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else None, "n": len(vals)}


def _fmt(stat: dict | None, digits: int, scale: float = 1.0) -> str:
    if stat is None:
        return "–"
    text = f"{stat['mean'] * scale:.{digits}f}"
    return text if stat["sd"] is None else f"{text} ± {stat['sd'] * scale:.{digits}f}"


def _short(message: str | None, n: int = 120) -> str:
    text = (message or "no message").replace("|", "/").replace("\n", " ")
    return text if len(text) <= n else text[: n - 3] + "..."


def class_list(records: list[dict]) -> list[tuple[str, str]]:
    """(key, name) of the evaluated classes, from the first successful run."""
    for r in records:
        if r.get("status") == "ok":
            return [(k, c["name"]) for k, c in r["summary"]["classes"].items()]
    return []


def recipe_text(run: dict) -> str:
    """``AdamW lr 0.001 wd 0.01, WarmupCosineLR (1 warm-up epochs)`` from a run's recorded recipe."""
    rec = run.get("stats", {}).get("recipe")
    if not rec:
        return run.get("recipe", "own")
    wds = sorted({g.get("weight_decay") for g in rec["param_groups"] if g.get("weight_decay") is not None})
    momentum = {g.get("momentum") for g in rec["param_groups"]} - {None}
    text = f"{run.get('recipe', 'own')}: {rec['optimizer']} lr {rec['lr']:g} wd {'/'.join(f'{w:g}' for w in wds)}"
    if momentum:
        text += f" m {'/'.join(f'{m:g}' for m in momentum)}"
    text += f", {rec['schedule']}"
    if rec.get("warmup_epochs"):
        text += f" ({rec['warmup_epochs']} warm-up ep.)"
    return text


def convergence_text(runs: list[dict]) -> str:
    """``yes`` when every run had converged (``stats.converged``), else the seeds that had not and those
    whose pseudo Dice was too noisy to tell, e.g. ``not converged (seed 1); unclear (seed 0, 2)``."""
    from sss_nnunet.compare.stats import converged

    flags = {r["seed"]: converged(r) for r in runs}
    if flags and all(flags.values()):
        return "yes"
    parts = [f"{word} (seed {', '.join(str(s) for s, f in flags.items() if f is value)})"
             for word, value in (("not converged", False), ("unclear", None))
             if any(f is value for f in flags.values())]
    return "; ".join(parts) or "?"


def aggregate(trainers: list[str], records: list[dict]) -> list[dict]:
    """One entry per row label (``trainers``): status text, runs, and mean/sd over its successful seeds."""
    classes = class_list(records)
    rows = []
    for trainer in trainers:
        runs = sorted((r for r in records if r.get("row", r["trainer"]) == trainer), key=lambda r: r["seed"])
        ok = [r for r in runs if r.get("status") == "ok"]
        bad = [r for r in runs if r.get("status") != "ok"]
        agg = {}
        if ok:
            agg = {
                "parameters": _stats([r["stats"]["parameters"] for r in ok]),
                "seconds_per_iteration": _stats([r["stats"]["seconds_per_iteration"] for r in ok]),
                "peak_memory_bytes": _stats([r["stats"]["peak_memory_bytes"] for r in ok]),
                "seconds_per_case": _stats([r["predict"]["seconds_per_case"] for r in ok]),
                "dice": {k: _stats([r["summary"]["classes"][k]["dice_mean"] for r in ok]) for k, _ in classes},
                "hd95": {k: _stats([r["summary"]["classes"][k]["hd95_mean"] for r in ok]) for k, _ in classes},
                "mean_dice": _stats([r["summary"]["mean"]["dice"] for r in ok]),
                "mean_hd95": _stats([r["summary"]["mean"]["hd95"] for r in ok]),
                "memory_kind": ok[0]["stats"]["peak_memory_kind"],
                "recipe": recipe_text(ok[0]),
                "convergence": convergence_text(ok),
            }
        if not runs:
            status = "not run"
        elif not bad:
            status = "ok"
        else:
            status = "; ".join(f"seed {r['seed']} FAILED at {r['step']} ({_short(r.get('message'))}): see {r['log']}"
                               for r in bad)
            if ok:
                status = f"{len(ok)}/{len(runs)} seeds ok; " + status
        rows.append({"trainer": trainer, "status": status, "n_ok": len(ok), "n_runs": len(runs),
                     "aggregate": agg, "runs": runs})
    return rows


def _machine() -> dict:
    from importlib.metadata import version

    import torch

    return {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
            "nnunetv2": version("nnunetv2"), "sss_nnunet": version("sss-nnunet"),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def _layouts(layouts: dict | None, default: str) -> str:
    others = {k: v for k, v in (layouts or {}).items() if k != default}
    return "; ".join(f"{k} patch {v['patch_size']} batch {v['batch_size']} ({str(v.get('network')).split('.')[-1]})"
                     for k, v in others.items()) or "none"


def _verdict_cell(v: dict | None) -> str:
    if v is None:
        return "–"
    if v["mean_diff"] is None:
        return v["verdict"]
    from sss_nnunet.compare.stats import interval_text, metric_digits

    return f"{interval_text(v['mean_diff'], *v['ci95'], metric_digits(v['metric']))} {v['verdict']}"


def _code_versions(rows: list[dict]) -> str:
    """The sss-nnunet versions (with git commit) the runs were trained with, most frequent first."""
    counts: dict[str, int] = {}
    for row in rows:
        for run in row.get("runs", []):
            if run.get("status") == "ok":
                key = run.get("code", "not recorded")
                counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} ({n} run{'s' * (n > 1)})" for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) \
        or "no finished run"


def markdown(spec_settings: dict, rows: list[dict], classes: list[tuple[str, str]], meta: dict,
             verdict_list: list[dict] | None = None) -> str:
    b = spec_settings["budget"]
    hd_unit = "mm"
    mem_kinds = {r["aggregate"].get("memory_kind") for r in rows if r["aggregate"]}
    mem_label = "peak CUDA (GiB)" if mem_kinds == {"cuda_max_allocated"} else "peak RSS (GiB)"
    verdict_list = verdict_list or []
    find = {(v["row"], v["metric"]): v for v in verdict_list}
    head = (["trainer", "status", "recipe", "converged", f"Δ Dice vs {meta.get('baseline_label') or 'baseline'} "
             "[95 % CI]", "Δ HD95 (mm) [95 % CI]", "params (M)", "train s/it", mem_label, "predict s/case"]
            + [f"Dice {n}" for _, n in classes] + ["mean Dice"]
            + [f"HD95 {n} ({hd_unit})" for _, n in classes] + ["mean HD95"])
    lines = [
        f"# sss-nnunet compare: {spec_settings['dataset']}, {spec_settings['configuration']}, "
        f"fold {spec_settings['fold']}",
        "",
        f"- command: `{meta['command']}`",
        f"- date: {meta['date']}; machine: {meta['machine']['cpu_count']} CPU cores, {meta['machine']['platform']}, "
        f"torch {meta['machine']['torch']}, nnunetv2 {meta['machine']['nnunetv2']}, device {spec_settings['device']}",
        f"- budget (same for every trainer): {b['iterations']} training iterations = {b['epochs']} epochs x "
        f"{b['iterations_per_epoch']}, {b['val_iterations_per_epoch']} validation iterations per epoch; "
        f"plans {spec_settings['plans']}: patch {meta.get('patch_size')}, batch "
        f"{b.get('batch_size') or meta.get('batch_size')}"
        f"{' (every trainer)' if b.get('batch_size') else ''}; other plans: "
        f"{_layouts(meta.get('plans_layouts'), spec_settings['plans'])}; "
        f"seeds {meta['seeds']}; test-time mirroring {'on' if spec_settings['tta'] else 'off'}",
        f"- test cases: {meta.get('n_test_cases')} (imagesTs/labelsTs), scored by `sss-nnunet evaluate --protocol "
        f"strict` (Dice per class over cases, HD95 in mm; a missed or spurious class counts as Dice 0 and a "
        f"penalty HD95); data digest {spec_settings.get('data', 'not recorded')}",
        f"- code of the runs: {_code_versions(rows)}",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in rows:
        a = row["aggregate"]
        if not a:
            cells = [row["trainer"], row["status"]] + ["–"] * (len(head) - 2)
        else:
            cells = [row["trainer"], row["status"], a["recipe"], a["convergence"],
                     _verdict_cell(find.get((row["trainer"], "dice"))),
                     _verdict_cell(find.get((row["trainer"], "hd95"))),
                     _fmt(a["parameters"], 2, 1e-6),
                     _fmt(a["seconds_per_iteration"], 2), _fmt(a["peak_memory_bytes"], 2, 2**-30),
                     _fmt(a["seconds_per_case"], 1)]
            cells += [_fmt(a["dice"][k], 3) for k, _ in classes] + [_fmt(a["mean_dice"], 3)]
            cells += [_fmt(a["hd95"][k], 1) for k, _ in classes] + [_fmt(a["mean_hd95"], 1)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "Columns: values are mean ± standard deviation over the seeds that succeeded. *Δ ... [95 % CI]*: the row "
        "minus the baseline under the same recipe, per test case averaged over the seeds both finished, mean over "
        "cases with a bootstrap 95 % interval (cases resampled, fixed generator seed); *ahead* / *behind*: the "
        "interval excludes 0 (for HD95 lower is better), *tie*: it contains 0, *too few runs*: fewer than 3 seeds "
        "or 5 test cases (sss_nnunet/compare/stats.py). *converged*: yes when no run's pseudo Dice rose by more than "
        "0.02 per fifth of the epochs (slope of a line through the last two fifths); *not converged*: it rose by "
        "more, by over 2 standard errors; *unclear*: the rise is within the epoch-to-epoch noise. *recipe*: "
        "optimiser, peak learning rate, weight decay, schedule as the training process built them; every "
        "trainer's train_step clips the gradient norm at 12 unless it "
        "says otherwise in compare.json. *train s/it*: median over "
        "epochs of the training part of an epoch (data waiting included, validation excluded) divided by its "
        "iterations. *peak RSS*: maximum resident memory of the training process (data-augmentation workers "
        "not included); *peak CUDA*: torch.cuda.max_memory_allocated. *predict s/case*: nnUNetv2_predict from "
        "the first case's start to the last case's end, per case (start-up and model loading excluded).",
        "Timings depend on the machine and its load at the time of the run.",
        "",
        "Files: compare.json (all numbers, per seed), compare.png (per-class Dice), curves.png (nnU-Net's "
        "per-epoch training curves), runs/seedS/ROW/ (logs, predictions, evaluation), "
        "runs/seedS/nnUNet_results/ (the models; trainer TRAINER[_RECIPERecipe]_budget, found through "
        "budget_trainers/THAT_NAME: "
        "add that folder to nnUNet_extTrainer to use them with nnUNetv2_predict).",
    ]
    return "\n".join(lines) + "\n"


def write_report(out: Path, spec_settings: dict, trainers: list[str], seeds: list[int], records: list[dict],
                 command: str, extra: dict | None = None, spec_rows: list | None = None,
                 baseline: str | None = None) -> list[dict]:
    """Write the four outputs into ``out`` (each atomically); returns the aggregated rows.
    ``spec_rows`` (runner ``Row``s, in the order of ``trainers``) enable the verdicts against ``baseline``."""
    from sss_nnunet.compare.stats import resolve_baseline, row_key, verdicts

    rows = aggregate(trainers, records)
    classes = class_list(records)
    verdict_list, base = [], None
    if spec_rows:
        base = resolve_baseline(spec_rows, baseline)
        labels = {row_key(r): r.label for r in spec_rows}
        verdict_list = verdicts(records, spec_rows, base, labels)
    meta = {"command": command, "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": _machine(), "seeds": " ".join(map(str, seeds)), **(extra or {}),
            "baseline_label": next((r.label.split(" [")[0] for r in spec_rows or [] if (r.trainer, r.plans) == base),
                                   None)}
    write_outputs(out, {"settings": spec_settings, "meta": meta, "trainers": trainers, "seeds": seeds,
                        "classes": dict(classes), "rows": rows, "verdicts": verdict_list})
    return rows


def write_outputs(out: Path, data: dict) -> None:
    """compare.md, compare.json (``data``), compare.png and curves.png into ``out``, each atomically."""
    settings, rows, classes = data["settings"], data["rows"], list(data["classes"].items())
    atomic_write_text(out / "compare.md", markdown(settings, rows, classes, data["meta"], data["verdicts"]))
    atomic_write_json(out / "compare.json", data)
    title = (f"{settings['dataset']} {settings['configuration']} fold {settings['fold']}, "
             f"{settings['budget']['iterations']} iterations, seeds {data['meta']['seeds']}")
    bar_plot(rows, classes, title, out / "compare.png")
    curves_plot(rows, title, out / "curves.png")


def rerender(compare_json: Path) -> bool:
    """Rewrite a comparison's four outputs, beside ``compare_json``, from the run records it holds:
    its rows aggregated again by today's rules (e.g. the convergence column), its settings, meta
    (command, date) and verdicts kept. ``python -m sss_nnunet.compare.report COMPARE_JSON ...``
    A report under another name (an archived ladder rung, ``rungs/SSSTrainer_L4.json``) is rewritten
    in place, alone: the folder's compare.md and plots belong to its compare.json. Returns whether
    the other three outputs were written."""
    import json

    path = Path(compare_json)
    data = json.loads(path.read_text())
    records = [run for row in data["rows"] for run in row.get("runs", [])]
    data["rows"] = aggregate(data["trainers"], records)
    if path.name == "compare.json":
        write_outputs(path.parent, data)
        return True
    atomic_write_json(path, data)
    return False


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m sss_nnunet.compare.report",
                                     description="Redraw compare.md, compare.json and the plots of finished "
                                                 "comparisons from the run records in their compare.json.")
    parser.add_argument("compare_json", nargs="+", type=Path, help="a compare.json of sss-nnunet compare")
    args = parser.parse_args(argv)
    for path in args.compare_json:
        try:
            alone = not rerender(path)
        except (OSError, ValueError) as e:
            parser.error(f"{path}: cannot read it ({e})")
        except (KeyError, TypeError, AttributeError) as e:
            parser.error(f"{path}: not a compare.json of sss-nnunet compare (missing or malformed {e})")
        print(f"rewrote {path} alone (not named compare.json)" if alone else f"rewrote the reports beside {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
