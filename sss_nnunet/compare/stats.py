"""Statistics of a comparison: paired per-case differences against a baseline, bootstrap intervals,
verdicts, and whether a run's training had converged.

Verdict of a row against the baseline row (same recipe, same test cases), per metric:

1. per test case and seed, the metric averaged over the classes (Dice as a fraction, HD95 in mm);
2. per test case, the mean over the seeds both rows finished of (row - baseline);
3. the mean of those per-case differences, with a bootstrap 95 % interval: cases resampled with
   replacement ``n_boot`` times by a generator with a fixed seed, the 2.5 and 97.5 percentiles;
4. ``ahead`` when the interval excludes 0 on the better side (Dice above, HD95 below), ``behind``
   on the worse side, ``tie`` when it contains 0; ``too few runs`` below ``MIN_SEEDS`` seeds or
   ``MIN_CASES`` cases.

The interval covers the variation over test cases of the seed-averaged difference; the spread
between seeds enters only through that average, so a few seeds can still mislead: the per-seed
means are in the table beside it.
"""

from __future__ import annotations

import math

import numpy as np

MIN_SEEDS = 3
MIN_CASES = 5
N_BOOT = 10_000
BOOT_SEED = 20240  # fixed: the same records give the same interval
METRICS = {"dice": 1.0, "hd95": -1.0}  # sign: +1 larger is better, -1 smaller is better
CONVERGENCE_RISE = 0.02  # pseudo-Dice rise per fifth of the epochs that counts as still learning


def bootstrap_ci(diffs: np.ndarray, n_boot: int = N_BOOT, seed: int = BOOT_SEED) -> tuple[float, float, float]:
    """(mean, 2.5 %, 97.5 %) of the mean of ``diffs`` (one value per case) by resampling cases."""
    diffs = np.asarray(diffs, dtype=float)
    rng = np.random.default_rng(seed)
    means = diffs[rng.integers(0, len(diffs), size=(n_boot, len(diffs)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(diffs.mean()), float(lo), float(hi)


def verdict(lo: float, hi: float, sign: float, n_seeds: int, n_cases: int) -> str:
    """``ahead`` / ``behind`` / ``tie`` from an interval of (row - baseline); ``sign`` +1: larger is better."""
    if n_seeds < MIN_SEEDS or n_cases < MIN_CASES:
        return "too few runs"
    if sign * lo > 0 and sign * hi > 0:
        return "ahead"
    if sign * lo < 0 and sign * hi < 0:
        return "behind"
    return "tie"


def case_means(record: dict, metric: str) -> dict[str, float]:
    """Per test case: ``metric`` averaged over the classes with a finite value."""
    out = {}
    for case, classes in record["summary"]["cases"].items():
        vals = [c[metric] for c in classes.values() if c.get(metric) is not None and math.isfinite(c[metric])]
        if vals:
            out[case] = float(np.mean(vals))
    return out


def paired_differences(rows: list[dict], base: list[dict], metric: str) -> tuple[np.ndarray, list[int]]:
    """Per case (sorted by name), the mean over shared seeds of (row - baseline); and those seeds."""
    by_seed = {r["seed"]: r for r in base if r.get("status") == "ok"}
    seeds = sorted(r["seed"] for r in rows if r.get("status") == "ok" and r["seed"] in by_seed)
    if not seeds:
        return np.zeros(0), []
    mine = {r["seed"]: r for r in rows if r.get("status") == "ok"}
    per_seed = [(case_means(mine[s], metric), case_means(by_seed[s], metric)) for s in seeds]
    cases = sorted(set.intersection(*[set(a) & set(b) for a, b in per_seed]))
    diffs = np.array([np.mean([a[c] - b[c] for a, b in per_seed]) for c in cases])
    return diffs, seeds


def seed_means(records: list[dict], metric: str) -> list[float]:
    """Per run record (one per seed): ``metric`` averaged over its test cases (each case over its classes)."""
    return [float(np.mean(list(case_means(r, metric).values()))) for r in records]


def paired_interval(rows: list[dict], base: list[dict], metric: str) -> tuple[float, float, float, str] | None:
    """(mean, lo, hi, verdict) of the paired per-case difference rows - base over their shared seeds,
    with the bootstrap 95 % interval; None when they share no finished seed."""
    diffs, seeds = paired_differences(rows, base, metric)
    if len(diffs) == 0:
        return None
    mean, lo, hi = bootstrap_ci(diffs)
    return mean, lo, hi, verdict(lo, hi, METRICS[metric], len(seeds), len(diffs))


def metric_digits(metric: str) -> int:
    """Decimals a metric is written with: 3 for Dice, 1 for HD95 (mm)."""
    return 3 if metric == "dice" else 1


def interval_text(mean: float, lo: float, hi: float, digits: int) -> str:
    """A difference and its interval as the tables write it, e.g. ``+0.003 [+0.001, +0.006]``."""
    return f"{mean:+.{digits}f} [{lo:+.{digits}f}, {hi:+.{digits}f}]"


def mean_sd_text(values: list[float], digits: int) -> str:
    """``mean ± sd`` (sample sd; 0 for one value) of per-seed values."""
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{np.mean(values):.{digits}f} ± {sd:.{digits}f}"


def row_key(record_or_row) -> tuple[str, str, str]:
    """(trainer, plans, recipe) of a run record (dict) or a runner ``Row``."""
    if isinstance(record_or_row, dict):
        return record_or_row["trainer"], record_or_row.get("plans", ""), record_or_row.get("recipe", "own")
    return record_or_row.trainer, record_or_row.plans, record_or_row.recipe


def resolve_baseline(rows: list, baseline: str | None) -> tuple[str, str] | None:
    """(trainer, plans) of the baseline among ``rows`` (runner ``Row``s): ``baseline`` as
    ``TRAINER[:PLANS]``, else the first row whose trainer is one of nnU-Net's own; None if there is none.
    ``ValueError`` when ``baseline`` names no row."""
    if baseline:
        trainer, _, plans = baseline.partition(":")
        for r in rows:
            if r.trainer == trainer and (r.plans == plans if plans else not r.explicit_plans):
                return r.trainer, r.plans
        raise ValueError(f"--baseline {baseline}: not one of the -tr rows "
                         f"({', '.join(dict.fromkeys(r.label.split(' [')[0] for r in rows))})")
    from sss_nnunet.compare.budget import find_trainer

    for r in rows:
        try:
            if find_trainer(r.trainer).__module__.startswith("nnunetv2."):
                return r.trainer, r.plans
        except LookupError:
            continue
    return None


def verdicts(records: list[dict], rows: list, baseline: tuple[str, str] | None,
             labels: dict[tuple[str, str, str], str]) -> list[dict]:
    """One entry per (row other than the baseline, metric), against the baseline under the same recipe."""
    if baseline is None:
        return []
    out = []
    for row in rows:
        key = row_key(row)
        if key[:2] == baseline:
            continue
        base_key = (*baseline, key[2])
        base_runs = [r for r in records if row_key(r) == base_key]
        my_runs = [r for r in records if row_key(r) == key]
        if not base_runs:
            continue
        for metric, sign in METRICS.items():
            diffs, seeds = paired_differences(my_runs, base_runs, metric)
            entry = {"trainer": key[0], "plans": key[1], "recipe": key[2], "row": labels.get(key, key[0]),
                     "baseline": labels.get(base_key, baseline[0]), "metric": metric, "n_cases": int(len(diffs)),
                     "n_seeds": len(seeds), "seeds": seeds}
            if len(diffs) == 0:
                out.append({**entry, "mean_diff": None, "ci95": None, "verdict": "too few runs"})
                continue
            mean, lo, hi = bootstrap_ci(diffs)
            out.append({**entry, "mean_diff": mean, "ci95": [lo, hi],
                        "verdict": verdict(lo, hi, sign, len(seeds), len(diffs))})
    return out


def pseudo_dice_rise(per_epoch: list[float | None]) -> tuple[float, float] | None:
    """How much the pseudo Dice still rises over a fifth of the epochs, with its standard error:
    the slope of a least-squares line through the per-epoch values of the last two fifths of the
    epochs (at least 3; non-finite values skipped), times a fifth of the epochs. None below 3 values.

    A line through several epochs, not the last value: a 2-iteration validation's pseudo Dice jumps
    between epochs (by 0.5 on the context sets, where a patch may miss a class). And the per-epoch
    value, not nnU-Net's EMA of it: the EMA (0.9 old + 0.1 new) lags by about ten epochs, so in a
    20-epoch run it still climbs by 0.05-0.1 over the last fifth after the pseudo Dice has been flat
    for half the run."""
    vals = np.array([v for v in per_epoch if v is not None and math.isfinite(v)], dtype=float)
    if len(vals) < 3:
        return None
    m = min(len(vals), max(3, round(0.4 * len(vals))))
    x, y = np.arange(m, dtype=float), vals[-m:]
    xc = x - x.mean()
    slope = float(xc @ (y - y.mean()) / (xc @ xc))
    resid = y - y.mean() - slope * xc
    se = math.sqrt(float(resid @ resid) / (m - 2) / float(xc @ xc))  # m >= 3: one degree of freedom at least
    fifth = len(vals) / 5
    return slope * fifth, se * fifth


def converged(record: dict) -> bool | None:
    """Whether training had converged, from the run's per-epoch pseudo Dice (``mean_fg_dice``; records
    without it: the EMA) by ``pseudo_dice_rise``: True when it rises by at most ``CONVERGENCE_RISE``
    per fifth of the epochs, False when it rises by more and the rise is more than 2 standard errors
    above 0, None when the rise is within the noise (or the run has fewer than 3 epochs)."""
    curves = record.get("stats", {}).get("curves", {})
    trend = pseudo_dice_rise(curves.get("mean_fg_dice") or curves.get("ema_fg_dice") or [])
    if trend is None:
        return None
    rise, se = trend
    if rise <= CONVERGENCE_RISE:
        return True
    return False if rise - 2 * se > 0 else None
