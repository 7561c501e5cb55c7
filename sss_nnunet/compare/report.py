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

from sss_nnunet.io import atomic_output, atomic_write_json, atomic_write_text

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
    from sss_nnunet.compare.stats import converged

    flags = {r["seed"]: converged(r) for r in runs}
    bad = [s for s, f in flags.items() if f is False]
    if bad:
        return "not converged (seed " + ", ".join(map(str, bad)) + ")"
    return "yes" if flags and all(f for f in flags.values()) else "?"


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
    digits = 3 if v["metric"] == "dice" else 1
    lo, hi = v["ci95"]
    return f"{v['mean_diff']:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}] {v['verdict']}"


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
    mem_label = "peak CUDA (GB)" if mem_kinds == {"cuda_max_allocated"} else "peak RSS (GB)"
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
        "or 5 test cases (sss_nnunet/compare/stats.py). *converged*: no run's EMA pseudo Dice rose by more than "
        "0.02 over its last fifth of epochs. *recipe*: optimiser, peak learning rate, weight decay, schedule "
        "as the training process built them; every trainer's train_step clips the gradient norm at 12 unless it "
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


def bar_plot(rows: list[dict], classes: list[tuple[str, str]], title: str, path: Path) -> None:
    """Grouped bars: per-class and mean Dice per trainer, error bars = sd over seeds."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    groups = [n for _, n in classes] + ["mean"]
    shown = [r for r in rows if r["aggregate"]]
    fig = Figure(figsize=(max(5.0, 1.1 * len(groups) * max(1, len(shown)) ** 0.5 + 2), 4.2), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    width = 0.8 / max(1, len(shown))
    x = np.arange(len(groups))
    for i, row in enumerate(shown):
        a = row["aggregate"]
        stats = [a["dice"][k] for k, _ in classes] + [a["mean_dice"]]
        means = [100 * s["mean"] if s else 0.0 for s in stats]
        sds = [100 * (s["sd"] or 0.0) if s else 0.0 for s in stats]
        ax.bar(x + (i - (len(shown) - 1) / 2) * width, means, width, yerr=sds if any(sds) else None, capsize=2,
               label=row["trainer"])
    ax.set_xticks(x, groups, rotation=20, ha="right")
    ax.set_ylabel("Dice (%) on the test cases")
    ax.set_ylim(0, 105)
    ax.grid(axis="y", alpha=0.3)
    ax.set_title(title, fontsize=9)
    if shown:  # beside the axes: inside, it hides the bars of the first groups once there are many trainers
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight")


def curves_plot(rows: list[dict], title: str, path: Path) -> None:
    """Side by side: training loss, validation loss and nnU-Net's EMA pseudo Dice over training iterations;
    one colour per trainer, one line per seed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = (("train_losses", "training loss"), ("val_losses", "validation loss"),
              ("ema_fg_dice", "pseudo Dice (EMA, validation patches)"),
              ("ema_fg_dice", "pseudo Dice against wall time"))
    fig = Figure(figsize=(17, 3.8), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 4)
    colors = [f"C{i % 10}" for i in range(len(rows))]
    for row, color in zip(rows, colors):
        for j, run in enumerate(r for r in row["runs"] if r.get("status") == "ok"):
            curves, per_epoch = run["stats"]["curves"], run["stats"]["budget"]["iterations_per_epoch"]
            for i, (ax, (key, _)) in enumerate(zip(axes, panels)):
                ys = curves.get(key) or []
                xs = [(e + 1) * per_epoch for e in range(len(ys))]
                if i == 3:  # minutes from the first epoch's start to each epoch's end
                    starts, ends = curves.get("epoch_start_timestamps"), curves.get("epoch_end_timestamps")
                    if not starts or not ends:
                        continue
                    xs = [(t - starts[0]) / 60 for t in ends[: len(ys)]]
                    ys = ys[: len(xs)]
                ax.plot(xs, ys, color=color, lw=1.2, alpha=0.9 if j == 0 else 0.5,
                        label=row["trainer"] if j == 0 else None)
    for i, (ax, (_, label)) in enumerate(zip(axes, panels)):
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("wall time (min, training + validation)" if i == 3 else "training iterations")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format="png")


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
    atomic_write_text(out / "compare.md", markdown(spec_settings, rows, classes, meta, verdict_list))
    atomic_write_json(out / "compare.json", {"settings": spec_settings, "meta": meta, "trainers": trainers,
                                             "seeds": seeds, "classes": dict(classes), "rows": rows,
                                             "verdicts": verdict_list})
    title = (f"{spec_settings['dataset']} {spec_settings['configuration']} fold {spec_settings['fold']}, "
             f"{spec_settings['budget']['iterations']} iterations, seeds {meta['seeds']}")
    bar_plot(rows, classes, title, out / "compare.png")
    curves_plot(rows, title, out / "curves.png")
    return rows
