"""Score prediction label maps against ground truth: per case and class, in parallel over cases.

Per class, both masks are cut to the union bounding box of that class in the
prediction and the ground truth (found for all labels in one pass with
``scipy.ndimage.find_objects``), so a 512x512x200 CT costs little more than
reading it. Averaging: per class over cases, then the mean of the class means.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from tqdm import tqdm

from sss_nnunet.errors import SSSError
from sss_nnunet.evaluation.cases import CasePair, load_label_map
from sss_nnunet.evaluation.metrics import Box, union_box
from sss_nnunet.evaluation.protocols import BOTH_EMPTY, MISSED, OK, SPURIOUS, Protocol
from sss_nnunet.evaluation.tasks import EvalClass, EvalTask
from sss_nnunet.pools import run_in_pool


@dataclass(frozen=True)
class ClassResult:
    case: str
    cls: str  # EvalClass.key
    dice: float  # fraction 0..1
    hd95: float  # voxels (paper) or mm (strict)
    status: str  # protocols.OK | BOTH_EMPTY | MISSED | SPURIOUS


def label_boxes(labels: np.ndarray, allowed: frozenset[int], where: str) -> dict[int, Box]:
    """Bounding box of every label value present in ``labels`` (D, H, W); refuses unknown values."""
    if labels.size == 0:
        raise SSSError(f"{where}: empty image")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0:
        raise SSSError(f"{where}: negative label value {lo}")
    boxes = ndimage.find_objects(labels, max_label=hi) if hi > 0 else []
    present = {v + 1: b for v, b in enumerate(boxes) if b is not None}
    unknown = sorted(set(present) - allowed)
    if unknown:
        raise SSSError(
            f"{where}: label values {unknown} are not labels of this dataset (expected {sorted(allowed)})"
        )
    return present


def class_mask(labels: np.ndarray, cls: EvalClass) -> np.ndarray:
    """Boolean mask of ``cls`` (the union of its label values) in ``labels``."""
    if len(cls.values) == 1:
        return labels == cls.values[0]
    return np.isin(labels, cls.values)


def score_label_maps(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    task: EvalTask,
    protocol: Protocol,
    case: str = "",
) -> list[ClassResult]:
    """Score two label maps of the same shape (D, H, W); ``spacing`` in mm, same axis order."""
    if pred.shape != gt.shape:
        raise SSSError(f"{case}: prediction shape {pred.shape} differs from ground truth {gt.shape}")
    pred_boxes = label_boxes(pred, task.label_values, f"{case} prediction")
    gt_boxes = label_boxes(gt, task.label_values, f"{case} ground truth")
    out = []
    for cls in task.classes:
        box = union_box([pred_boxes.get(v) for v in cls.values] + [gt_boxes.get(v) for v in cls.values])
        if box is None:
            box = tuple(slice(0, 0) for _ in pred.shape)
        s = protocol.score(class_mask(pred[box], cls), class_mask(gt[box], cls), spacing, gt.shape)
        out.append(ClassResult(case, cls.key, s.dice, s.hd95, s.status))
    return out


def evaluate_case(pair: CasePair, task: EvalTask, protocol: Protocol) -> list[ClassResult]:
    """Load one prediction / ground-truth pair and score every class (spacing from the ground truth)."""
    pred, _ = load_label_map(pair.pred)
    gt, spacing = load_label_map(pair.gt)
    return score_label_maps(pred, gt, spacing, task, protocol, case=pair.case)


def evaluate_pairs(
    pairs: Sequence[CasePair], task: EvalTask, protocol: Protocol, workers: int = 1, progress: bool = True
) -> list[ClassResult]:
    """Score all pairs; ``workers`` > 1 uses a process pool. Rows ordered as ``pairs``, then classes."""
    bar = tqdm(total=len(pairs), desc=f"evaluate ({protocol.name})", unit="case", disable=not progress)
    per_case: list[list[ClassResult] | None] = [None] * len(pairs)
    with bar:
        if workers <= 1 or len(pairs) <= 1:
            for i, pair in enumerate(pairs):
                per_case[i] = evaluate_case(pair, task, protocol)
                bar.update()
        else:
            for i, rows in run_in_pool(evaluate_case, [(p, task, protocol) for p in pairs], workers):
                per_case[i] = rows
                bar.update()
    return [r for rows in per_case for r in rows]


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _std(values: list[float]) -> float | None:
    return float(np.std(values)) if values else None


def summarize(results: Sequence[ClassResult], task: EvalTask, protocol: Protocol) -> dict:
    """JSON-ready summary: per-class means/stds and status counts, mean of class means, per case."""
    cases = list(dict.fromkeys(r.case for r in results))
    classes = {}
    for cls in task.classes:
        rows = [r for r in results if r.cls == cls.key]
        by_status = {s: [r.case for r in rows if r.status == s] for s in (OK, BOTH_EMPTY, MISSED, SPURIOUS)}
        classes[cls.key] = {
            "name": cls.name,
            "short": cls.short,
            "label_values": list(cls.values),
            "n_cases": len(rows),
            "dice_mean": _mean([r.dice for r in rows]),
            "dice_std": _std([r.dice for r in rows]),
            "hd95_mean": _mean([r.hd95 for r in rows]),
            "hd95_std": _std([r.hd95 for r in rows]),
            # HD95 over the cases where both masks are present (no zeros, no penalties)
            "hd95_mean_both_present": _mean([r.hd95 for r in rows if r.status == OK]),
            "n_both_present": len(by_status[OK]),
            "n_both_empty": len(by_status[BOTH_EMPTY]),
            "n_missed": len(by_status[MISSED]),
            "n_spurious": len(by_status[SPURIOUS]),
            "missed_cases": by_status[MISSED],
            "spurious_cases": by_status[SPURIOUS],
        }
    dice_means = [c["dice_mean"] for c in classes.values() if c["dice_mean"] is not None]
    hd_means = [c["hd95_mean"] for c in classes.values() if c["hd95_mean"] is not None]
    return {
        "dataset": task.name,
        "kind": task.kind,
        "protocol": protocol.name,
        "protocol_description": protocol.description,
        "hd95_unit": protocol.hd95_unit,
        "dice_unit": "fraction (0..1)",
        "averaging": "per class over cases, then the mean of the class means",
        "n_cases": len(cases),
        "mean": {"dice": _mean(dice_means), "hd95": _mean(hd_means)},
        "classes": classes,
        "cases": {
            case: {
                r.cls: {"dice": r.dice, "hd95": r.hd95, "status": r.status} for r in results if r.case == case
            }
            for case in cases
        },
    }


def metrics_csv(results: Sequence[ClassResult]) -> str:
    """``case,class,dice,hd95``, one row per case and class, full float precision."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["case", "class", "dice", "hd95"])
    writer.writerows([r.case, r.cls, _num(r.dice), _num(r.hd95)] for r in results)
    return buf.getvalue()


def _num(x: float) -> str:
    return "nan" if math.isnan(x) else repr(float(x))
